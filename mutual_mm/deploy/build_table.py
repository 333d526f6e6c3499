"""Evaluate a calibrated checkpoint over subnets: the lookup table."""
import contextlib
import copy
import os.path as osp
import sys
from typing import Callable, List, Optional

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from ..fileio import atomic_folder
from ..engine.trained_space import TrainedSpace, check_trained
from .calibrate_checkpoint import calibrate_subnets, calibration_dataloader_cfg
from .calibrated_subnet_hook import CalibratedSubnetHook
from .checked_checkpoint import load_checked_checkpoint
from .complexity import measure_costs, preprocessed_examples
from ..hosts import host_of
from ..internals import mark_checkpoint_loaded
from ..models.slimming import unwrap_model
from .apply_subnet import apply_subnet
from .lookup_table import TableRow
from .onnx_export import check_threads
from .runtimes import SubnetModel, build_runtime, runtime_class
from .subnet import Subnet


def pick_metric(host, metrics: dict, name: Optional[str]) -> str:
    """``name``, else the host family's main metric among ``metrics``."""
    if name is not None:
        if name not in metrics:
            raise KeyError(f'metric {name!r} is not among the evaluator\'s: '
                           f'{sorted(metrics)}')
        return name
    return host.main_metric(metrics)


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

    ``latency``: False (no latency), True (``'torch'``), the name of a
    registered runtime (:func:`~mutual_mm.deploy.runtimes.runtime_names`:
    ``'torch'``, the PyTorch model on its device; ``'onnxruntime'``, each
    subnet exported to ONNX and timed in ONNX Runtime on the CPU;
    ``'onnxruntime-int8'``, that file quantized to INT8, calibrated on
    ``num_batches`` batches of the config's calibration data) or a list of
    them: one row per subnet and runtime, each with the runtime's
    ``precision``. A runtime whose outputs differ from PyTorch's beyond
    rounding (INT8) has its metric measured in it, on the test set; the others
    keep PyTorch's. Latency runs with ``threads`` CPU threads (default: the
    runtime's, see :func:`latency_threads`; recorded in each row); the files
    stay in ``onnx_dir`` (default: ``<work_dir>/onnx``), named by the subnet's
    key and the runtime's ``file_suffix``.

    ``on_row``: called with each row as soon as it is measured (the caller's
    progress display; without it, mmengine's progress bar on stdout).

    Returns:
        (rows, metric name)
    """
    names = latency_runtimes(latency)
    runtimes = [build_runtime(name, threads=threads, repeats=repeats) for name in names]
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    # this one hook sets the subnet of each test
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') not in
                        ('CalibratedSubnetHook', CalibratedSubnetHook)]
    hook = CalibratedSubnetHook(allow_untrained=allow_untrained)
    runner = Runner.from_cfg(cfg)
    for runtime in runtimes:  # before any work: a runtime that cannot run this model
        runtime.check_model(unwrap_model(runner.model))
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

    loaders = _SubnetLoaders(runner, cfg)
    rows, name = [], metric
    host = host_of(runner.model)
    if on_row is None:
        bar = ProgressBar(len(subnets) * max(1, len(runtimes)), file=sys.stdout)

        def on_row(row):
            bar.update()
    with contextlib.ExitStack() as stack:
        # the exported files are built aside and swapped in whole at the end: an
        # interrupted table never leaves a folder mixing two runs' graphs
        graphs = (stack.enter_context(atomic_folder(onnx_dir or osp.join(cfg.work_dir, 'onnx')))
                  if any(r.file_suffix for r in runtimes) else None)
        for subnet in subnets:
            hook.subnet = subnet
            metrics = runner.test()
            name = pick_metric(host, metrics, name)
            batch = next(iter(loaders.at('test', subnet)))
            costs = measure_costs(runner.model, batch,
                                  dict.fromkeys((flops_scope, 'features')))
            model = unwrap_model(runner.model)
            target = SubnetModel(
                model, subnet, preprocessed_examples(model, batch), batch,
                test_loader=lambda s=subnet: loaders.at('test', s),
                calibration_loader=lambda s=subnet: loaders.at('calibration', s),
                evaluator_cfg=cfg.test_evaluator, num_batches=num_batches)
            measured = [(None, float(metrics[name]), None)]
            if runtimes:
                measured = [_measure(runtime, target, graphs, name, float(metrics[name]))
                            for runtime in runtimes]
            for runtime, value, ms in measured:
                rows.append(TableRow(subnet, costs[flops_scope], costs['params'], value, ms,
                                     trained=subnet.key not in untrained,
                                     latency_runtime=runtime and runtime.name,
                                     features_flops=costs['features'],
                                     latency_threads=runtime and runtime.threads,
                                     precision=runtime.precision if runtime else 'fp32'))
                on_row(rows[-1])
    return rows, name


def _measure(runtime, target: SubnetModel, folder: Optional[str], metric: str,
             torch_metric: float):
    """(runtime, metric, latency) of ``target`` in ``runtime``: its artifact
    exported (into ``folder`` when it writes a file) and timed; the metric
    measured in it where its outputs differ from PyTorch's, else PyTorch's."""
    artifact, ms = export_and_time(runtime, target, folder)
    value = (float(runtime.evaluate(artifact, target)[metric]) if runtime.metric_in_runtime
             else torch_metric)
    return runtime, value, ms


def export_and_time(runtime, target: SubnetModel, folder: Optional[str]):
    """(artifact, latency in ms) of ``target`` in ``runtime``: exported (into
    ``folder``, named by the subnet's key, when the runtime writes a file), then
    timed."""
    path = (osp.join(folder, target.subnet.key + runtime.file_suffix)
            if runtime.file_suffix else None)
    artifact = runtime.export(target, path)
    return artifact, runtime.latency_ms(artifact, target)


class _SubnetLoaders:
    """The test and calibration loaders, each built once and set to the
    subnet asked for (:func:`apply_subnet`)."""

    def __init__(self, runner, cfg: Config):
        self.runner, self.cfg, self.built = runner, cfg, {}

    def at(self, kind: str, subnet: Subnet):
        if kind not in self.built:
            loader_cfg = (copy.deepcopy(self.cfg.test_dataloader) if kind == 'test'
                          else calibration_dataloader_cfg(self.cfg))
            self.built[kind] = Runner.build_dataloader(loader_cfg, seed=self.runner.seed)
        apply_subnet(self.runner.model, self.built[kind].dataset, subnet)
        return self.built[kind]


def latency_runtimes(latency) -> List[str]:
    """The runtime names of ``latency`` (False/None: none; True: torch; a
    name; a list of names), each checked against the registry."""
    if latency is False or latency is None:
        return []
    if latency is True:
        return ['torch']
    names = [latency] if isinstance(latency, str) else list(latency)
    for runtime in names:
        runtime_class(runtime)  # ValueError listing the registered ones
    if len(set(names)) != len(names):
        raise ValueError(f'latency={latency!r}: a runtime is named twice')
    return names


def latency_threads(runtime: Optional[str], threads: Optional[int]) -> Optional[int]:
    """The CPU threads latency is measured with, made explicit so the table
    records it: ``threads`` (a positive int), else the runtime's default
    (ONNX Runtime: every CPU this process may use; torch: its current
    intra-op count); None without a runtime."""
    check_threads(threads)
    if runtime is None:
        return None
    return build_runtime(runtime, threads=threads).threads
