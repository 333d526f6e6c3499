"""Re-estimating BatchNorm statistics for each subnet (paper §3.4, §4.3).

The statistics of a width-``w`` sub-network on ``r``-sized inputs differ from the
full network's, so each subnet gets its own: BN layers are put in train
mode (they normalize with their batch's statistics, as in training) while
everything else stays in eval mode, ``num_batches`` batches run forward without
gradients, and each BN layer's statistics are the mean and (unbiased) variance
of every value its input took over all those batches: sums, sums of squares and
counts accumulated in float64 and, when distributed, summed over the ranks. So
each sample weighs the same whatever the batching (a cumulative average of
per-batch statistics, ``momentum=None``, would weigh a batch of 1 like a batch
of 64, and miss the spread between batches). Only the channels a BN layer
really saw are kept.

What this does not remove: a BN layer's input depends on how the BN layers
before it normalized, with their own batch's statistics; the first BN layer's
statistics are therefore exactly those of the whole calibration set at once,
deeper ones those of the features the calibration batches produce (the
PreciseBN estimate). Exactness for every layer would take one pass per BN layer.
"""
from contextlib import contextmanager
from itertools import islice
from typing import Dict, Iterable, Tuple

import torch
from torch import nn

from mmengine.dist import all_reduce, get_world_size, is_distributed

from ..hosts import host_of, set_model_width
from ..models.slimming import batch_norms, unwrap_model

# {bn layer name: (running_mean[:c], running_var[:c])}
BNStats = Dict[str, Tuple[torch.Tensor, torch.Tensor]]


@contextmanager
def calibration_mode(model: nn.Module):
    """Eval mode except BN layers, which are reset and accumulate a cumulative
    average; modes and momenta are restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    momenta = []
    model.eval()
    for _, bn in batch_norms(model):
        momenta.append((bn, bn.momentum))
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    try:
        yield
    finally:
        for bn, momentum in momenta:
            bn.momentum = momentum
        for module, training in modes:
            module.training = training


class _InputMoments:
    """Per-channel count, sum and sum of squares of a BN layer's inputs."""

    def __init__(self):
        self.count = 0
        self.sum = None
        self.sum_sq = None

    def __call__(self, module, args) -> None:
        x = args[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        s, sq = x.sum(dims), (x * x).sum(dims)
        self.count += x.numel() // x.shape[1]
        if self.sum is None:
            self.sum, self.sum_sq = s, sq
        else:  # the channels seen are the same for every batch of one width
            self.sum, self.sum_sq = self.sum + s, self.sum_sq + sq

    def reduce_over_ranks(self) -> None:
        if not is_distributed() or get_world_size() == 1:
            return
        packed = torch.cat([self.sum, self.sum_sq,
                            self.sum.new_tensor([float(self.count)])])
        all_reduce(packed, op='sum')
        c = self.sum.numel()
        self.sum, self.sum_sq, self.count = packed[:c], packed[c:2 * c], int(packed[-1])

    def mean_var(self):
        n = self.count
        mean = self.sum / n
        var = (self.sum_sq - n * mean * mean) / max(n - 1, 1)  # unbiased, as BN keeps
        return mean, var.clamp_(min=0)


@torch.no_grad()
def calibrate_bn(model: nn.Module, batches: Iterable[dict], num_batches: int,
                 width: float = 1.0) -> BNStats:
    """Calibrate the BN statistics of ``model`` at ``width`` on ``num_batches``
    batches (collated, as a dataloader yields them; of any sizes) and return them.

    Each BN layer gets the mean and unbiased variance of all its input values
    over the batches (and over the ranks when distributed): see the module
    docstring. The statistics stay in the model's buffers (the first ``c``
    channels of each BN layer, ``c`` being what the layer saw); the returned
    copy can be stored and re-applied with :func:`apply_bn_stats`.
    """
    if num_batches <= 0:
        raise ValueError(f'num_batches={num_batches}; valid: a positive int')
    inner = unwrap_model(model)
    set_model_width(inner, width)
    moments = {name: _InputMoments() for name, _ in batch_norms(inner)}
    handles = [bn.register_forward_pre_hook(moments[name])
               for name, bn in batch_norms(inner)]
    host = host_of(inner)
    seen = 0
    try:
        with calibration_mode(inner):
            for batch in islice(batches, num_batches):
                host.calibration_forward(inner.data_preprocessor(batch, False))
                seen += 1
    finally:
        for handle in handles:
            handle.remove()
    if seen < num_batches:
        raise ValueError(f'calibration asked for {num_batches} batches but the data '
                         f'gave only {seen}')
    stats = {}
    for name, bn in batch_norms(inner):
        m = moments[name]
        if m.sum is None:  # not on this subnet's path
            continue
        m.reduce_over_ranks()
        mean, var = m.mean_var()
        c = mean.numel()
        bn.running_mean[:c] = mean.to(bn.running_mean.dtype)
        bn.running_var[:c] = var.to(bn.running_var.dtype)
        stats[name] = (bn.running_mean[:c].clone(), bn.running_var[:c].clone())
    return stats


def apply_bn_stats(model: nn.Module, stats: BNStats) -> None:
    """Write calibrated statistics into the BN buffers (the first ``c`` channels)."""
    layers = dict(batch_norms(model))
    missing = sorted(set(stats) - set(layers))
    if missing:
        raise KeyError(f'calibrated statistics name BN layers the model lacks: {missing[:5]}')
    for name, (mean, var) in stats.items():
        bn = layers[name]
        bn.running_mean[:mean.numel()] = mean
        bn.running_var[:var.numel()] = var
