"""One subnet outside PyTorch: ONNX export, a check in ONNX Runtime, and its
latency there.

What is exported is a part of the static subnet
(:func:`~mutual_mm.deploy.export.export_subnet`: plain layers of the reduced
shapes, calibrated BN statistics in place), named as FLOPs scopes are:
``'model'``, the whole model (recognizers and classifiers up to the class
scores; detectors with their RPN, RoI heads, NMS and mask pasting, through
MMDeploy: :mod:`.mmdeploy_export`), or ``'features'`` (backbone + neck, for
detectors). The file needs neither this package, mmcv nor PyTorch to run: only
standard ONNX operators.

Exporter: torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``
(the dynamo exporter needs ``onnxscript``, not a dependency here; MMDeploy's
rewriting works only with the TorchScript one), opset 17 (detectors through
MMDeploy: 16). Recognizers' and classifiers' input shape is fixed (the
subnet's; batch 1); a whole detector's height and width are dynamic.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_path
from ..hosts import HostForward, host_of
from .complexity import median_ms
from .export import export_subnet
from . import mmdeploy_export

OPSET = 17


def need_onnxruntime(what: str = 'ONNX export'):
    """``onnxruntime``, or an ImportError saying that ``what`` needs it and how to
    install it (an optional extra)."""
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - an optional extra
        raise ImportError(f'{what} needs onnx and onnxruntime: pip install '
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


def exported_part(static: nn.Module, part: str = 'model') -> nn.Module:
    """A static subnet's (:func:`~mutual_mm.deploy.export.export_subnet`)
    exported part (torch route: ``'model'``, the family's ``exported``
    forward, or ``'features'``) as a one-input, flat-output module in eval
    mode: what :func:`export_onnx` writes."""
    forward = 'features' if part == 'features' else 'exported'
    return _FlatOutputs(HostForward(host_of(static), forward)).eval()


def onnx_part(static: nn.Module, part: Optional[str] = None) -> str:
    """``part`` checked against what the family exports (None: its default)."""
    parts = host_of(static).onnx_parts
    if part is None:
        return parts[0]
    if part not in parts:
        raise ValueError(f'ONNX part {part!r}: {type(static).__name__} exports '
                         f'{", ".join(map(repr, parts))}')
    return part


def uses_mmdeploy(static: nn.Module, part: str) -> bool:
    return part == 'model' and host_of(static).onnx_route == 'mmdeploy'


def export_subnet_onnx(static: nn.Module, inputs: torch.Tensor, data_samples, path: str,
                       part: Optional[str] = None) -> str:
    """Write ``part`` of the static subnet as ONNX at ``path``, traced on one
    preprocessed input (``inputs`` of batch 1, its ``data_samples``)."""
    part = onnx_part(static, part)
    with atomic_path(path) as tmp:
        _write_onnx(static, inputs, data_samples, tmp, part)
    return path


def _write_onnx(static: nn.Module, inputs: torch.Tensor, data_samples, path: str,
                part: str) -> None:
    """``part`` of the static subnet written to ``path`` itself (the callers
    give a temporary name): whole detectors through MMDeploy."""
    if uses_mmdeploy(static, part):
        mmdeploy_export.export_detector_onnx(static, inputs, data_samples, path)
    else:
        export_onnx(exported_part(static, part), tuple(inputs.shape), path)


@torch.no_grad()
def check_subnet_onnx(static: nn.Module, path: str, examples: Sequence,
                      part: Optional[str] = None) -> Dict:
    """Run the ONNX file in ONNX Runtime and the same part in PyTorch on each
    of ``examples`` (``(inputs, data_samples)`` of one input each): the worst
    difference, and ``within_tolerance``. A whole detector is compared with
    MMDeploy's rewritten ``predict`` (the graph it was exported from), image by
    image, against :data:`~mutual_mm.deploy.mmdeploy_export.TOLERANCE`; other
    parts against :data:`RELATIVE_TOLERANCE`."""
    part = onnx_part(static, part)
    if not uses_mmdeploy(static, part):
        checks = [check_onnx(exported_part(static, part), path, inputs)
                  for inputs, _ in examples]
        worst = max(checks, key=lambda c: c['max_rel_diff'])
        return dict(worst, images=len(checks),
                    within_tolerance=all(c['within_tolerance'] for c in checks))
    session = onnx_session(path)
    checks = []
    for inputs, samples in examples:
        expected = mmdeploy_export.rewritten_outputs(static, inputs, samples)
        got = session.run(None, {session.get_inputs()[0].name: inputs.cpu().numpy()})
        checks.append(mmdeploy_export.compare_detections(expected, got))
    return mmdeploy_export.summarize_checks(checks)


def write_checked_onnx(static: nn.Module, examples: Sequence, out_dir: str,
                       part: Optional[str] = None, name: str = 'subnet.onnx') -> Dict:
    """:func:`export_subnet_onnx` to ``out_dir/name`` (traced on the first of
    ``examples``), then :func:`check_subnet_onnx` on all of them; a difference
    above the tolerance fails, naming it."""
    part = onnx_part(static, part)
    inputs, samples = examples[0]
    path = osp.join(out_dir, name)
    with atomic_path(path) as tmp:  # in place only once checked
        _write_onnx(static, inputs, samples, tmp, part)
        check = check_subnet_onnx(static, tmp, examples, part)
        if not check['within_tolerance']:
            raise RuntimeError(f'{path}: ONNX Runtime differs from PyTorch beyond the '
                               f'tolerance (the file is not written): {check}')
    return dict(path=path, part=part, **check)


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


def check_threads(threads: Optional[int]) -> Optional[int]:
    """``threads`` if it is None or a positive int; else ``ValueError``
    (ONNX Runtime would take 0 as "its default" without a word)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f'threads={threads!r}; valid: a positive number of CPU threads, '
                         'or None (the runtime\'s default)')
    return threads


def onnx_session(path: str, threads: Optional[int] = None):
    """An ONNX Runtime session on the CPU execution provider (``threads``
    intra-op threads; None: its default)."""
    ort = need_onnxruntime()
    options = ort.SessionOptions()
    if check_threads(threads) is not None:
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


def onnx_latency_ms(path: str, inputs: Sequence[np.ndarray], threads: Optional[int] = None,
                    repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time (ms) of one run of the ONNX file in ONNX Runtime (CPU)
    over ``inputs`` (real preprocessed inputs of batch 1: a detector's heads
    cost what its detections cost), each run ``repeats`` times after
    ``warmup``."""
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    feeds = [{name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs]
    return median_ms(lambda feed: session.run(None, feed), repeats, warmup, cases=feeds)


@torch.no_grad()
def evaluate_onnx_detector(path: str, model: nn.Module, dataloader, evaluator,
                           threads: Optional[int] = None) -> Dict[str, float]:
    """The metrics of a whole-detector ONNX file (:func:`export_subnet_onnx`)
    run in ONNX Runtime over ``dataloader`` (the config's test loader, at the
    subnet's input size), one image per run: the inputs preprocessed by
    ``model``'s data preprocessor, the outputs turned into mmdet predictions by
    :func:`~mutual_mm.deploy.mmdeploy_export.detections_to_instances`, scored
    by ``evaluator`` (an mmengine ``Evaluator``, e.g. the config's CocoMetric)."""
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    evaluator.dataset_meta = dataloader.dataset.metainfo
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        samples = data['data_samples']
        for i, sample in enumerate(samples):
            outputs = session.run(None, {name: data['inputs'][i:i + 1].cpu().numpy()})
            sample.pred_instances = mmdeploy_export.detections_to_instances(outputs, sample)
        evaluator.process(data_samples=samples, data_batch=batch)
    return evaluator.evaluate(len(dataloader.dataset))


@torch.no_grad()
def evaluate_onnx_scores(path: str, model: nn.Module, dataloader, evaluator,
                         threads: Optional[int] = None) -> Dict[str, float]:
    """The metrics of a recognizer's or classifier's ONNX file (the class
    scores of :meth:`~mutual_mm.hosts.HostAdapter.exported`) run in ONNX
    Runtime over ``dataloader`` (the test loader at the subnet's input), one
    input per run: inputs preprocessed by ``model``'s data preprocessor, scores
    turned into predictions by the family's
    :meth:`~mutual_mm.hosts.HostAdapter.predictions` (the head's own
    post-processing), scored by ``evaluator`` (an mmengine ``Evaluator``)."""
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    host = host_of(model)
    evaluator.dataset_meta = dataloader.dataset.metainfo
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        samples = data['data_samples']
        for i, sample in enumerate(samples):
            inputs = np.ascontiguousarray(data['inputs'][i:i + 1].cpu().numpy())
            scores = session.run(None, {name: inputs})[0]
            host.predictions(torch.from_numpy(scores), [sample])
        evaluator.process(data_samples=samples, data_batch=batch)
    return evaluator.evaluate(len(dataloader.dataset))


def evaluate_onnx(path: str, model: nn.Module, dataloader, evaluator,
                  threads: Optional[int] = None) -> Dict[str, float]:
    """The config's metrics of the ONNX file of ``model``'s part ``'model'``
    run in ONNX Runtime on the test set: :func:`evaluate_onnx_detector` for a
    whole detector, else :func:`evaluate_onnx_scores`."""
    if uses_mmdeploy(model, 'model'):
        return evaluate_onnx_detector(path, model, dataloader, evaluator, threads)
    return evaluate_onnx_scores(path, model, dataloader, evaluator, threads)
