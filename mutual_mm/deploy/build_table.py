"""Evaluate a calibrated checkpoint over subnets: the lookup table."""
import contextlib
import copy
import os
import os.path as osp
import shutil
import sys
from typing import Callable, List, Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from ..fileio import atomic_folder
from ..engine.trained_space import TrainedSpace, check_trained
from .calibrate_checkpoint import calibrate_subnets, calibration_dataloader_cfg
from .calibrated_subnet_hook import CalibratedSubnetHook
from .checked_checkpoint import load_checked_checkpoint
from .complexity import measure_costs, measure_latency_ms, preprocessed_examples
from ..hosts import host_of
from ..internals import mark_checkpoint_loaded
from ..models.slimming import unwrap_model
from .apply_subnet import apply_subnet
from .lookup_table import TableRow
from .onnx_export import check_threads
from .subnet import Subnet


def pick_metric(host, metrics: dict, name: Optional[str]) -> str:
    """``name``, else the host family's main metric among ``metrics``."""
    if name is not None:
        if name not in metrics:
            raise KeyError(f'metric {name!r} is not among the evaluator\'s: '
                           f'{sorted(metrics)}')
        return name
    return host.main_metric(metrics)


LATENCY_RUNTIMES = ('torch', 'onnxruntime')


def build_lookup_table(cfg: Config, checkpoint: str, subnets: List[Subnet],
                       metric: Optional[str] = None, latency=False,
                       num_batches: int = 10, repeats: int = 10,
                       flops_scope: str = 'model', allow_untrained: bool = False,
                       threads: Optional[int] = None, onnx_dir: Optional[str] = None,
                       on_row: Optional[Callable[[TableRow], None]] = None):
    """Evaluate ``subnets`` of ``checkpoint`` with the config's own test metric.

    Each subnet runs with BN statistics calibrated for it: taken from the
    checkpoint's ``bn_calibration`` when present, else calibrated here first
    (``num_batches`` training batches through the test pipeline). FLOPs and
    parameters are measured on one test input at the subnet, of the
    whole model or of its feature extractor (``flops_scope``: 'model' or
    'features', see :data:`mutual_mm.deploy.complexity.FLOPS_SCOPES`).
    Subnets outside what the checkpoint was trained on are refused, or
    with ``allow_untrained`` tabulated with ``trained=False``.

    ``latency``: False, ``'torch'`` (or True: the PyTorch model on its device)
    or ``'onnxruntime'``: each subnet exported (:mod:`.onnx_export`; the
    family's exported part, one test input) and timed in ONNX Runtime on the
    CPU with ``threads`` intra-op threads (default: every CPU this process
    may use; recorded in each row); the files stay in ``onnx_dir``
    (default: ``<work_dir>/onnx``), named by the subnet's key.

    ``on_row``: called with each row as soon as it is measured (the caller's
    progress display; without it, mmengine's progress bar on stdout).

    Returns:
        (rows, metric name)
    """
    runtime = _latency_runtime(latency)
    threads = latency_threads(runtime, threads)
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    # this one hook sets the subnet of each test
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') not in
                        ('CalibratedSubnetHook', CalibratedSubnetHook)]
    hook = CalibratedSubnetHook(allow_untrained=allow_untrained)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([hook])
    loaded = load_checked_checkpoint(runner, checkpoint)
    untrained = check_trained(subnets, TrainedSpace.from_checkpoint(loaded), allow_untrained)
    mark_checkpoint_loaded(runner)  # runner.test() must not reload it
    calibration = dict(hook.calibration or {})
    missing = [c for c in subnets if c.network.key not in calibration]
    if missing:
        loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=runner.seed)
        calibration.update(calibrate_subnets(runner.model, loader, missing, num_batches))
    hook.calibration = calibration

    probe_loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader),
                                           seed=runner.seed)
    rows, name, onnx_files = [], metric, {}
    host = host_of(runner.model)
    if on_row is None:
        bar = ProgressBar(len(subnets), file=sys.stdout)  # the current one (redirectable)

        def on_row(row):
            bar.update()
    with contextlib.ExitStack() as stack:
        # the ONNX files are built aside and swapped in whole at the end: an
        # interrupted table never leaves a folder mixing two runs' graphs
        graphs = (stack.enter_context(atomic_folder(onnx_dir or osp.join(cfg.work_dir, 'onnx')))
                  if runtime == 'onnxruntime' else None)
        for subnet in subnets:
            hook.subnet = subnet
            metrics = runner.test()
            name = pick_metric(host, metrics, name)
            apply_subnet(runner.model, probe_loader.dataset, subnet)
            batch = next(iter(probe_loader))
            costs = measure_costs(runner.model, batch,
                                  dict.fromkeys((flops_scope, 'features')))
            ms = None
            if runtime == 'torch':
                with torch_threads(threads):
                    ms = measure_latency_ms(runner.model, batch, repeats)
            elif runtime == 'onnxruntime':
                ms = _onnxruntime_latency(runner.model, batch, subnet, graphs, threads,
                                          repeats, onnx_files)
            rows.append(TableRow(subnet, costs[flops_scope], costs['params'],
                                 float(metrics[name]), ms,
                                 trained=subnet.key not in untrained,
                                 latency_runtime=runtime, features_flops=costs['features'],
                                 latency_threads=threads if runtime else None))
            on_row(rows[-1])
    return rows, name


def _latency_runtime(latency) -> Optional[str]:
    if latency is False or latency is None:
        return None
    runtime = 'torch' if latency is True else latency
    if runtime not in LATENCY_RUNTIMES:
        raise ValueError(f'latency={latency!r}; valid: False, True (torch), '
                         f'{", ".join(map(repr, LATENCY_RUNTIMES))}')
    return runtime


def latency_threads(runtime: Optional[str], threads: Optional[int]) -> Optional[int]:
    """The CPU threads latency is measured with, made explicit so the table
    records it: ``threads`` (a positive int), else every CPU this process may
    use (ONNX Runtime), or PyTorch's current intra-op count (torch)."""
    check_threads(threads)
    if runtime is None:
        return None
    if threads is None:
        threads = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                   else os.cpu_count()) if runtime == 'onnxruntime' else \
            torch.get_num_threads()
    return threads


@contextlib.contextmanager
def torch_threads(threads: int):
    """PyTorch's intra-op threads set to ``threads`` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _onnxruntime_latency(model, batch: dict, subnet: Subnet, onnx_dir: str,
                         threads: Optional[int], repeats: int, exported: dict) -> float:
    """The subnet's whole model exported to ``onnx_dir/<key>.onnx`` and timed
    in ONNX Runtime on each input of ``batch`` (real test inputs). A graph
    whose input size is dynamic (a whole detector) serves every resolution:
    exported once per width x proposals (``exported`` remembers the files),
    linked under each subnet's name."""
    from .export import export_subnet
    from .onnx_export import export_subnet_onnx, onnx_latency_ms, uses_mmdeploy
    model = unwrap_model(model)
    examples = preprocessed_examples(model, batch)
    path = osp.join(onnx_dir, f'{subnet.key}.onnx')
    graph = (subnet.width, subnet.proposals) if uses_mmdeploy(model, 'model') else None
    if graph in exported:
        link_or_copy(exported[graph], path)
    else:
        static = export_subnet(model, subnet.width, tuple(examples[0][0].shape))
        export_subnet_onnx(static, *examples[0], path)
        if graph is not None:
            exported[graph] = path
    return onnx_latency_ms(path, [inputs.cpu().numpy() for inputs, _ in examples],
                           threads, repeats)


def link_or_copy(source: str, path: str) -> None:
    """``path`` as a hard link to ``source`` (a copy where links fail)."""
    if osp.exists(path):
        os.remove(path)
    try:
        os.link(source, path)
    except OSError:
        shutil.copyfile(source, path)
