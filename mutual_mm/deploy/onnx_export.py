"""One subnet outside PyTorch: ONNX export, a check in ONNX Runtime, and its
latency there.

What is exported is the family's ``exported`` part of the static subnet
(:func:`~mutual_mm.deploy.export.export_subnet`: plain layers of the reduced
shapes, calibrated BN statistics in place): recognizers and classifiers up to
the class scores, detectors backbone + neck. A detector's heads are not: their
post-processing needs mmcv's RoIAlign and NMS, custom operators that standard
ONNX Runtime lacks (MMDeploy, the ecosystem's tool for them, pins protobuf
<= 3.20.2 and predates this torch); run the exported features into your own
head implementation, or export the heads with MMDeploy in a separate
environment. The file needs neither this package nor mmcv to run.

Exporter: torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``,
opset 17 (the dynamo exporter needs ``onnxscript``, not a dependency here).
The input shape is fixed (the configuration's; batch 1 by default).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..hosts import HostForward, host_of
from .complexity import median_ms
from .export import export_subnet

OPSET = 17


def _need_onnxruntime():
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - an optional extra
        raise ImportError('ONNX export needs onnx and onnxruntime: pip install '
                          "'mutual_mm[onnx]' (or onnx onnxruntime)") from None
    return onnxruntime


def _flatten(outputs) -> List[torch.Tensor]:
    if torch.is_tensor(outputs):
        return [outputs]
    return [t for out in outputs for t in _flatten(out)]


class _FlatOutputs(nn.Module):
    """The exported part with its outputs as a flat tuple (ONNX has no nesting)."""

    def __init__(self, forward: nn.Module):
        super().__init__()
        self.forward_part = forward

    def forward(self, inputs):
        return tuple(_flatten(self.forward_part(inputs)))


def exported_part(static: nn.Module) -> nn.Module:
    """A static subnet's (:func:`~mutual_mm.deploy.export.export_subnet`)
    exported part as a one-input, flat-output module in eval mode: what
    :func:`export_onnx` writes."""
    return _FlatOutputs(HostForward(host_of(static), 'exported')).eval()


def static_exported_part(model: nn.Module, width: float,
                         input_shape: Sequence[int]) -> nn.Module:
    """:func:`exported_part` of ``model``'s static subnet at ``width``."""
    return exported_part(export_subnet(model, width, input_shape))


@torch.no_grad()
def export_onnx(part: nn.Module, input_shape: Sequence[int], path: str) -> str:
    """Write ``part`` (see :func:`static_exported_part`) as an ONNX file for
    inputs of ``input_shape``."""
    example = torch.zeros(tuple(input_shape))
    outputs = part(example)
    torch.onnx.export(part, (example, ), path, dynamo=False, opset_version=OPSET,
                      input_names=['inputs'],
                      output_names=[f'output{i}' for i in range(len(outputs))])
    return path


#: largest output difference ONNX Runtime may show against PyTorch, relative to
#: the largest output magnitude (float32 through other kernels: measured
#: 3e-7 and 5e-7 on the demo video model and detector)
RELATIVE_TOLERANCE = 1e-4


def onnx_session(path: str, threads: Optional[int] = None):
    """An ONNX Runtime session on the CPU execution provider (``threads``
    intra-op threads; None: its default)."""
    ort = _need_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


@torch.no_grad()
def check_onnx(part: nn.Module, path: str, inputs: torch.Tensor) -> Dict[str, float]:
    """Run the ONNX file in ONNX Runtime and ``part`` in PyTorch on ``inputs``:
    the largest absolute difference over the outputs, and relative to the
    largest PyTorch output magnitude."""
    expected = [t.float().numpy() for t in part(inputs)]
    session = onnx_session(path)
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    if len(got) != len(expected):
        raise RuntimeError(f'{path}: {len(got)} outputs in ONNX Runtime, '
                           f'{len(expected)} in PyTorch')
    max_abs = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
    scale = max(float(np.abs(e).max()) for e in expected) or 1.0
    return dict(max_abs_diff=max_abs, max_rel_diff=max_abs / scale,
                outputs=len(got), within_tolerance=max_abs / scale <= RELATIVE_TOLERANCE)


def onnx_latency_ms(path: str, input_shape: Sequence[int], threads: Optional[int] = None,
                    repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time (ms) of one run of the ONNX file in ONNX Runtime (CPU)."""
    session = onnx_session(path, threads)
    feed = {session.get_inputs()[0].name:
            np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)}
    return median_ms(lambda: session.run(None, feed), repeats, warmup)
