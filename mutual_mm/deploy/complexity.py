"""FLOPs, parameters and latency of a model at its current subnet,
counted on the compute really done (sliced layers count their sliced shapes)."""
import statistics
import time
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..hosts import HostForward, host_of
from ..hosts.base import count_flops
from ..models.slimming import unwrap_model
from ..ops import export_static


#: what FLOPs count: 'model' = the model as deployed on one input (the
#: family's ``model_flops``: the tensor-mode forward for recognizers and
#: classifiers; for detectors backbone, neck, RPN and the RoI heads on the
#: regions this input really sends through them, see
#: :meth:`~mutual_mm.hosts.DetectorHost.model_flops`); 'features' = the
#: feature extractor only (backbone + neck), the part that width and
#: resolution act on.
FLOPS_SCOPES = ('model', 'features')


def one_input(model: nn.Module, data_batch: dict):
    """The first preprocessed input of ``data_batch`` (batch of 1) and its data
    sample: what FLOPs, latency and export measure."""
    return preprocessed_examples(model, data_batch)[0]


def preprocessed_examples(model: nn.Module, batch: dict) -> list:
    """``(inputs, data_samples)`` of each input of ``batch``, preprocessed by
    the model, batch size 1 each."""
    data = model.data_preprocessor(batch, False)
    samples = data.get('data_samples')
    return [(data['inputs'][i:i + 1], samples[i:i + 1] if samples is not None else None)
            for i in range(len(data['inputs']))]


def scope_flops(model: nn.Module, inputs: torch.Tensor, data_samples, scope: str) -> float:
    """FLOPs of ``model`` (eval mode) on one preprocessed input, of ``scope``
    (see :data:`FLOPS_SCOPES`)."""
    if scope not in FLOPS_SCOPES:
        raise ValueError(f'FLOPs scope {scope!r}; valid: {", ".join(FLOPS_SCOPES)}')
    host = host_of(model)
    if scope == 'features':
        return count_flops(HostForward(host, 'features'), inputs)
    return host.model_flops(inputs, data_samples)


@torch.no_grad()
def measure_complexity(model: nn.Module, data_batch: dict,
                       scope: str = 'model') -> Tuple[float, float]:
    """(FLOPs, parameters) of one input of ``data_batch`` at the current subnet,
    of the whole model or of its feature extractor (``scope``, see
    :data:`FLOPS_SCOPES`); parameters of the whole static subnet."""
    costs = measure_costs(model, data_batch, (scope, ))
    return costs[scope], costs['params']


@torch.no_grad()
def measure_costs(model: nn.Module, data_batch: dict,
                  scopes: Sequence[str] = FLOPS_SCOPES) -> Dict[str, float]:
    """FLOPs of each of ``scopes`` and the parameters (``'params'``) of one
    input of ``data_batch`` at the current subnet."""
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    try:
        inputs, samples = one_input(model, data_batch)
        costs = {scope: scope_flops(model, inputs, samples, scope) for scope in scopes}
        static = export_static(HostForward(host_of(model), 'scores', samples), inputs)
        costs['params'] = float(sum(p.numel() for p in static.parameters()))
    finally:
        model.train(was_training)
    return costs


@torch.no_grad()
def measure_latency_ms(model: nn.Module, data_batch: dict, repeats: int = 10,
                       warmup: int = 2) -> float:
    """Median wall time (ms) of one input's deployed forward (the family's
    ``deployed``: post-processing included) on the model's device."""
    model = unwrap_model(model)
    model.eval()
    inputs, samples = one_input(model, data_batch)
    host = host_of(model)
    sync = torch.cuda.synchronize if inputs.is_cuda else None
    return median_ms(lambda: host.deployed(inputs, samples), repeats, warmup, sync)


def median_ms(run, repeats: int = 10, warmup: int = 2, sync=None,
              cases: Optional[Sequence] = None) -> float:
    """Median wall time (ms) of ``run()`` over ``repeats`` calls after ``warmup``
    (``sync()``, e.g. ``torch.cuda.synchronize``, around each timed call); with
    ``cases``, of ``run(case)`` for each case in turn (the median over all)."""
    calls = [lambda: run()] if cases is None else [lambda c=c: run(c) for c in cases]
    times = []
    for i in range(warmup + repeats):
        for call in calls:
            if sync:
                sync()
            start = time.perf_counter()
            call()
            if sync:
                sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
