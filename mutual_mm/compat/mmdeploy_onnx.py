"""MMDeploy 1.3.1 (its last release, 2023-12) on this torch: four narrow
repairs for exporting a detector to ONNX for ONNX Runtime.

MMDeploy is an optional extra; nothing here runs on ``import mutual_mm``. The
repairs apply inside :func:`mmdeploy_onnx_export`, a context manager that
:mod:`mutual_mm.deploy.mmdeploy_export` wraps around MMDeploy's ``export``,
and are undone when it exits:

* **TorchScript exporter.** torch >= 2.9 exports with the dynamo exporter by
  default (which needs ``onnxscript``); MMDeploy's function and symbolic
  rewriters work only with the TorchScript exporter. Inside the context
  ``torch.onnx.export`` defaults to ``dynamo=False`` (a caller's explicit
  ``dynamo=`` still wins). torch has deprecated that exporter: when it is
  removed, this route ends (README, "Outside PyTorch").
* **``_cast_Long``.** MMDeploy's RoIAlign symbolic imports
  ``torch.onnx.symbolic_opset9._cast_Long``, removed from torch; inside the
  context it exists again as what it was: a ``Cast`` to INT64.
* **Standard ``GridSample``.** MMDeploy exports ``grid_sample`` (mask pasting)
  as its custom operator ``mmdeploy::grid_sampler`` for every backend. ONNX
  has a standard ``GridSample`` since opset 16, which stock ONNX Runtime runs;
  :func:`register_standard_grid_sample` registers torch's own symbolic for
  the ``onnxruntime`` backend through MMDeploy's documented route
  (``SYMBOLIC_REWRITER.register_symbolic``; a backend's record wins over the
  default one), so the exported graph needs no custom-operator library.
* **The model's ``forward`` after export.** ``mmdeploy.apis.onnx.export``
  wraps the model's ``forward`` in an instance attribute and, on the way out,
  sets it to the *rewritten* forward of its finished rewriting context, so the
  model can no longer run under a later context (MMDeploy logs "Can not found
  context of ...two_stage_detector__forward" and fails). The context removes
  that attribute again when the model had none.

The fourth defect met on this stack, ``End2EndModel`` resizing boolean masks
with ``F.interpolate`` (refused by this torch), is not repaired: this package
does not use MMDeploy's runtime wrappers (they load MMDeploy's own bundled
ONNX Runtime custom-ops library; see :mod:`mutual_mm.deploy.mmdeploy_export`).
"""
import contextlib
import functools

import torch

#: the opset from which GridSample (and RoiAlign's half-pixel mode) are standard
MIN_OPSET = 16


def _cast_long(g, input, non_blocking=False):
    """What ``torch.onnx.symbolic_opset9._cast_Long`` was."""
    from onnx import TensorProto
    return g.op('Cast', input, to_i=TensorProto.INT64)


def _standard_grid_sampler(g, input, grid, mode_enum, padding_mode_enum, align_corners):
    from torch.onnx import symbolic_opset16
    return symbolic_opset16.grid_sampler(g, input, grid, mode_enum, padding_mode_enum,
                                         align_corners)


_REGISTERED = []


def register_standard_grid_sample() -> None:
    """Export ``grid_sampler`` as ONNX ``GridSample`` for the onnxruntime
    backend (idempotent)."""
    if _REGISTERED:
        return
    from mmdeploy.core import SYMBOLIC_REWRITER
    SYMBOLIC_REWRITER.register_symbolic('grid_sampler', backend='onnxruntime',
                                        is_pytorch=True)(_standard_grid_sampler)
    _REGISTERED.append(True)


@contextlib.contextmanager
def mmdeploy_onnx_export(model=None):
    """The repairs above, for the duration of one export of ``model``."""
    register_standard_grid_sample()
    had_forward = model is not None and 'forward' in vars(model)
    from torch.onnx import symbolic_opset9
    export = torch.onnx.export
    had_cast = hasattr(symbolic_opset9, '_cast_Long')

    @functools.wraps(export)
    def torchscript_export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return export(*args, **kwargs)

    torch.onnx.export = torchscript_export
    if not had_cast:
        symbolic_opset9._cast_Long = _cast_long
    try:
        yield
    finally:
        if model is not None and not had_forward:
            vars(model).pop('forward', None)
        torch.onnx.export = export
        if not had_cast:
            del symbolic_opset9._cast_Long
