"""Re-estimating BatchNorm statistics for each subnet (paper §3.4, §4.3).

The statistics of a width-``w`` sub-network on ``r``-sized inputs differ from the
full network's, so each subnet gets its own: ``num_batches`` batches run forward
without gradients, in eval mode but for the BN layers (below), and each BN
layer's statistics are the mean and (unbiased) variance of every value its input
took over all those batches: sums, sums of squares and counts accumulated in
float64 and, when distributed, summed over the ranks. So each sample weighs the
same whatever the batching (a cumulative average of per-batch statistics,
``momentum=None``, would weigh a batch of 1 like a batch of 64, and miss the
spread between batches). Only the channels a BN layer really saw are kept.

A BN layer's input depends on how the BN layers above it normalize, hence two
modes:

* one pass (``exact=False``, the default): every BN layer normalizes with its
  batch's own statistics, as in training (the PreciseBN estimate). A layer whose
  input passes through no other BN gets the whole set's statistics; a deeper one
  gets those of the features the calibration batches produce, which depend on
  how the set is batched. On the demo models after 2 training iterations,
  batches [3, 3, 2] against one batch of the same 8 samples: 19 of the 20
  layers differ by more than 1 %, by up to 32 % (video) and 38 % (detection),
  relative to the layer's largest statistic; the trained video demo's val top-1
  moved by at most one clip of 64 either way when its 8 subnets were calibrated
  exactly instead (benchmarks/results/bn_calibration_exact_cpu.json).
* exact (``exact=True``): one pass over the batches per BN *depth* (1 for a
  layer whose input passes through no other BN layer, else one more than the
  deepest BN layer its input passes through; :func:`bn_depths`). Pass ``k``
  measures the depth-``k`` layers while every shallower layer already
  normalizes with its final statistics, as the calibrated model will at test
  time, and stops each forward once the depth-``k`` layers have had their
  inputs. Every layer then gets the whole set's statistics whatever the
  batching (and ranks), up to float rounding. It costs about half a forward
  per depth: 4.9-7.4x the one pass's time on the demos' ResNet-18s (17 depths),
  15-18x on the provided R-50 configs (49 depths), on one CPU thread
  (benchmarks/bn_calibration_exact.py). The preprocessed batches are kept for
  the passes: ``num_batches`` of them at once, on the model's device.
"""
from collections import Counter, defaultdict
from contextlib import contextmanager
from itertools import islice
from typing import Dict, Iterable, List, Set, Tuple

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


def _set_population_stats(bn: nn.Module, moments: _InputMoments):
    """Write the (rank-reduced) statistics into the first ``c`` channels of the
    layer's buffers and return a copy of them."""
    moments.reduce_over_ranks()
    mean, var = moments.mean_var()
    c = mean.numel()
    bn.running_mean[:c] = mean.to(bn.running_mean.dtype)
    bn.running_var[:c] = var.to(bn.running_var.dtype)
    return bn.running_mean[:c].clone(), bn.running_var[:c].clone()


@torch.no_grad()
def calibrate_bn(model: nn.Module, batches: Iterable[dict], num_batches: int,
                 width: float = 1.0, exact: bool = False) -> BNStats:
    """Calibrate the BN statistics of ``model`` at ``width`` on ``num_batches``
    batches (collated, as a dataloader yields them; of any sizes) and return them.

    Each BN layer gets the mean and unbiased variance of all its input values
    over the batches (and over the ranks when distributed). With ``exact``, its
    input is what the calibrated model itself feeds it, so the statistics do not
    depend on how the set is batched, in any layer; it costs one pass per BN
    depth and keeps the ``num_batches`` preprocessed batches in memory. Without
    it (one pass, each layer normalizing with its batch's statistics) that holds
    only for the layers whose input passes through no other BN: see the module
    docstring. The statistics stay in the model's buffers (the first ``c``
    channels of each BN layer, ``c`` being what the layer saw); the returned
    copy can be stored and re-applied with :func:`apply_bn_stats`.

    Raises:
        ValueError: ``num_batches`` is not positive, or ``batches`` has fewer;
            with ``exact``: a BN layer reads its own output, or its input is
            computed outside autograd (``torch.no_grad`` inside the model,
            activation checkpointing), so its depth is unknown.
    """
    if num_batches <= 0:
        raise ValueError(f'num_batches={num_batches}; valid: a positive int')
    inner = unwrap_model(model)
    set_model_width(inner, width)
    host = host_of(inner)
    layers = dict(batch_norms(inner))
    moments = {name: _InputMoments() for name in layers}
    stats = {}
    with calibration_mode(inner):
        if exact:
            data = [inner.data_preprocessor(b, False) for b in islice(batches, num_batches)]
            _check_count(len(data), num_batches)
            sources, calls = _bn_sources(inner, host, data[0])
            depth = _depths(sources)
            for bn in layers.values():
                bn.eval()  # each normalizes with its buffers: final ones once measured
            for k in sorted(set(depth.values())):
                group = {n: bn for n, bn in layers.items() if depth.get(n) == k}
                _measure_group(host, data, group, moments,
                               calls_per_forward=sum(calls[n] for n in group))
                # from the next pass on, these normalize as at test time
                stats.update({n: _set_population_stats(bn, moments[n])
                              for n, bn in group.items()})
        else:
            handles = [bn.register_forward_pre_hook(moments[name])
                       for name, bn in layers.items()]
            try:
                seen = 0
                for batch in islice(batches, num_batches):
                    host.calibration_forward(inner.data_preprocessor(batch, False))
                    seen += 1
            finally:
                for handle in handles:
                    handle.remove()
            _check_count(seen, num_batches)
            stats = {name: _set_population_stats(layers[name], m)
                     for name, m in moments.items()
                     if m.sum is not None}  # None: not on this subnet's path
    return {name: stats[name] for name in layers if name in stats}  # model order


def _check_count(seen: int, num_batches: int) -> None:
    if seen < num_batches:
        raise ValueError(f'calibration asked for {num_batches} batches but the data '
                         f'gave only {seen}')


# ------------------------------------------------------------ exact mode
class _PassDone(Exception):
    """Raised once the layers a pass measures have all had their inputs."""


def _measure_group(host, data: List[dict], group: Dict[str, nn.Module],
                   moments: Dict[str, _InputMoments], calls_per_forward: int) -> None:
    """One pass over ``data`` accumulating the inputs of the ``group`` layers.
    Each forward stops after the group's last call (the deeper layers wait
    for this group's statistics anyway): ``calls_per_forward``, as counted
    by :func:`_bn_sources`, assumes which BN layers a forward runs, and how
    often, does not depend on the batch (a forward that calls them more often
    would stop early; one that calls them less runs to its end)."""
    seen = [0]

    def accumulate(name):
        def hook(module, args):
            moments[name](module, args)
            seen[0] += 1
            if seen[0] == calls_per_forward:
                raise _PassDone
        return hook

    handles = [bn.register_forward_pre_hook(accumulate(name)) for name, bn in group.items()]
    try:
        for batch in data:
            seen[0] = 0
            try:
                host.calibration_forward(batch)
            except _PassDone:
                pass
    finally:
        for handle in handles:
            handle.remove()


def bn_depths(model: nn.Module, data: dict) -> Dict[str, int]:
    """The depth of each BN layer that calibration runs on the preprocessed batch
    ``data``: 1 for a layer whose input passes through no other BN layer, else
    one more than the deepest BN layer its input passes through (the longest
    path). Layers of one depth (a downsample's BN and the parallel
    convolution's first BN) are measured by one pass of the exact calibration.

    Found from the autograd graph of one forward of ``data`` in calibration mode
    (the model's modes, BN statistics and ``requires_grad`` flags are
    restored): each BN input's graph is walked back to the nearest BN outputs.

    Raises:
        ValueError: a BN layer's input depends on its own output (a loop), or
            was computed outside autograd (see :func:`calibrate_bn`).
    """
    inner = unwrap_model(model)
    saved = [(buf, buf.clone()) for _, bn in batch_norms(inner) for buf in bn.buffers()]
    try:
        with calibration_mode(inner):
            sources, _ = _bn_sources(inner, host_of(inner), data)
    finally:
        for buf, value in saved:
            buf.copy_(value)
    return _depths(sources)


def _bn_sources(inner: nn.Module, host, data: dict) -> Tuple[Dict[str, Set[str]], Counter]:
    """({BN layer: the BN layers whose outputs its input is computed from, with
    no BN in between}, {BN layer: calls per forward}) from one forward of
    ``data`` with autograd on, in the modes the caller set: calibration mode,
    whose BN layers normalize with their batch's statistics, so the values stay
    in range (with reset statistics in eval mode, a deep network's could
    overflow before reaching, say, a detector's RoI heads)."""
    outputs = {}  # autograd node that made a BN output -> the layer
    inputs = defaultdict(list)  # layer -> the autograd node of each call's input
    calls = Counter()
    untracked = []  # layers whose input autograd did not record

    def on_input(name):
        def hook(module, args):
            calls[name] += 1
            x = args[0]
            inputs[name].append(x.grad_fn)
            if x.grad_fn is None and not x.requires_grad:
                untracked.append(name)
        return hook

    def on_output(name):
        def hook(module, args, output):
            # the node now: an in-place op after the layer (ReLU(inplace=True))
            # replaces the tensor's grad_fn, but the node stays in the graph
            outputs[output.grad_fn] = name
        return hook

    handles = []
    for name, bn in batch_norms(inner):
        handles += [bn.register_forward_pre_hook(on_input(name)),
                    bn.register_forward_hook(on_output(name))]
    # frozen layers (mmdet's frozen_stages) and the input must still leave
    # a graph: every parameter and the input require grad for this forward
    params = [(p, p.requires_grad) for p in inner.parameters()]
    try:
        for p, _ in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            host.calibration_forward(_inputs_requiring_grad(data))
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in params:
            p.requires_grad_(flag)
    if untracked:
        raise ValueError(
            f'exact BN calibration: the input of {sorted(set(untracked))[:3]} was computed '
            'outside autograd (in a torch.no_grad region, or by activation checkpointing '
            'such as with_cp=True), so which BN layers it passes through is unknown; '
            'turn that off for calibration, or calibrate with exact=False')
    outputs.pop(None, None)
    return {name: set().union(*(_nearest_bn(node, outputs) for node in nodes))
            for name, nodes in inputs.items()}, calls


def _inputs_requiring_grad(data: dict) -> dict:
    """``data`` with its floating-point input tensors replaced by aliases that
    require grad (the kept batch itself is not changed)."""
    def alias(t):
        if torch.is_tensor(t) and t.is_floating_point():
            return t.detach().requires_grad_()
        return t

    inputs = data['inputs']
    inputs = type(inputs)(map(alias, inputs)) if isinstance(inputs, (list, tuple)) \
        else alias(inputs)
    return dict(data, inputs=inputs)


def _nearest_bn(node, outputs: dict) -> Set[str]:
    """The BN layers whose output nodes are first met walking back from ``node``."""
    found, seen, stack = set(), set(), [node]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in outputs:
            found.add(outputs[node])
        else:
            stack.extend(parent for parent, _ in node.next_functions)
    return found


def _depths(sources: Dict[str, Set[str]]) -> Dict[str, int]:
    depth = {}

    def visit(name: str, path: tuple) -> int:
        if name not in depth:
            if name in path:
                loop = ' -> '.join(path[path.index(name):] + (name, ))
                raise ValueError(f'BN layer {name} reads its own output ({loop}): its '
                                 'statistics have no exact value; calibrate with exact=False')
            depth[name] = 1 + max((visit(s, path + (name, )) for s in sources[name]),
                                  default=0)
        return depth[name]

    for name in sources:
        visit(name, ())
    return depth


def relative_differences(got: BNStats, want: BNStats) -> Dict[str, float]:
    """How far two calibrations of one model are apart: {BN layer of ``want``:
    max |got - want| / max |want| over its channels, the larger of the mean's
    and the variance's}."""
    return {name: max(((g - w).abs().max() / w.abs().max()).item()
                      for g, w in zip(got[name], stats))
            for name, stats in want.items()}


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
