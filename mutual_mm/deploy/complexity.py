"""FLOPs, parameters and latency of a model at its current subnet,
counted on the compute really done (sliced layers count their sliced shapes)."""
import statistics
import time
from typing import Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from ..hosts import HostForward, host_of
from ..models.slimming import unwrap_model
from ..ops import export_static


#: what FLOPs count: 'model' = the whole tensor-mode forward (the family's
#: ``scores``); 'features' = the feature extractor only (backbone + neck), the
#: part that width and resolution act on. A detector's tensor-mode forward runs
#: the RoI heads on every proposal (the mask head too), far more than inference
#: does on its few detections, so for detectors 'features' is often the fairer
#: budget.
FLOPS_SCOPES = ('model', 'features')


def _scope_forward(model: nn.Module, data_samples, scope: str) -> HostForward:
    if scope not in FLOPS_SCOPES:
        raise ValueError(f'FLOPs scope {scope!r}; valid: {", ".join(FLOPS_SCOPES)}')
    return HostForward(host_of(model), 'features' if scope == 'features' else 'scores',
                       data_samples)


def one_input(model: nn.Module, data_batch: dict):
    """The first preprocessed input of ``data_batch`` (batch of 1) and its data
    sample: what FLOPs, latency and export measure."""
    data = model.data_preprocessor(data_batch, False)
    inputs = data['inputs'][:1]
    samples = data.get('data_samples')
    return inputs, (samples[:1] if samples is not None else None)


@torch.no_grad()
def measure_complexity(model: nn.Module, data_batch: dict,
                       scope: str = 'model') -> Tuple[float, float]:
    """(FLOPs, parameters) of one input of ``data_batch`` at the current config,
    of the whole model or of its feature extractor (``scope``, see
    :data:`FLOPS_SCOPES`)."""
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    try:
        inputs, samples = one_input(model, data_batch)
        forward = _scope_forward(model, samples, scope)
        analyzer = FlopAnalyzer(forward, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = float(analyzer.total())
        static = export_static(forward, inputs)
        params = float(sum(p.numel() for p in static.parameters()))
    finally:
        model.train(was_training)
    return flops, params


@torch.no_grad()
def measure_latency_ms(model: nn.Module, data_batch: dict, repeats: int = 10,
                       warmup: int = 2) -> float:
    """Median wall time (ms) of one input's tensor forward on the model's device."""
    model = unwrap_model(model)
    model.eval()
    inputs, samples = one_input(model, data_batch)
    forward = _scope_forward(model, samples, 'model')
    sync = torch.cuda.synchronize if inputs.is_cuda else None
    return median_ms(lambda: forward(inputs), repeats, warmup, sync)


def median_ms(run, repeats: int = 10, warmup: int = 2, sync=None) -> float:
    """Median wall time (ms) of ``run()`` over ``repeats`` calls after ``warmup``
    (``sync()``, e.g. ``torch.cuda.synchronize``, around each timed call)."""
    times = []
    for i in range(warmup + repeats):
        if sync:
            sync()
        start = time.perf_counter()
        run()
        if sync:
            sync()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
