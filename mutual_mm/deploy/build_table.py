"""Evaluate a calibrated checkpoint over subnets: the lookup table."""
import copy
from typing import List, Optional

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from ..engine.trained_space import TrainedSpace, check_trained
from .calibrate_checkpoint import calibrate_subnets, calibration_dataloader_cfg
from .calibrated_subnet_hook import CalibratedSubnetHook
from .complexity import measure_complexity, measure_latency_ms
from ..hosts import host_of
from ..internals import mark_checkpoint_loaded
from .apply_subnet import apply_subnet
from .lookup_table import TableRow
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
                       metric: Optional[str] = None, latency: bool = False,
                       num_batches: int = 10, repeats: int = 10,
                       flops_scope: str = 'model', allow_untrained: bool = False):
    """Evaluate ``subnets`` of ``checkpoint`` with the config's own test metric.

    Each subnet runs with BN statistics calibrated for it: taken from the
    checkpoint's ``bn_calibration`` when present, else calibrated here first
    (``num_batches`` training batches through the test pipeline). FLOPs and
    parameters are measured on one test input at the subnet, of the
    whole model or of its feature extractor (``flops_scope``: 'model' or
    'features', see :data:`mutual_mm.deploy.complexity.FLOPS_SCOPES`).
    Subnets outside what the checkpoint was trained on are refused, or
    with ``allow_untrained`` tabulated with ``trained=False``.

    Returns:
        (rows, metric name)
    """
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    # this one hook sets the subnet of each test
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') not in
                        ('CalibratedSubnetHook', CalibratedSubnetHook)]
    hook = CalibratedSubnetHook(allow_untrained=allow_untrained)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([hook])
    loaded = runner.load_checkpoint(checkpoint, map_location='cpu')
    untrained = check_trained(subnets, TrainedSpace.from_checkpoint(loaded), allow_untrained)
    mark_checkpoint_loaded(runner)  # runner.test() must not reload it
    calibration = dict(hook.calibration or {})
    missing = [c for c in subnets if c.key not in calibration]
    if missing:
        loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=runner.seed)
        calibration.update(calibrate_subnets(runner.model, loader, missing, num_batches))
    hook.calibration = calibration

    probe_loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader),
                                           seed=runner.seed)
    rows, name = [], metric
    host = host_of(runner.model)
    bar = ProgressBar(len(subnets))
    for subnet in subnets:
        hook.subnet = subnet
        metrics = runner.test()
        name = pick_metric(host, metrics, name)
        apply_subnet(runner.model, probe_loader.dataset, subnet)
        batch = next(iter(probe_loader))
        flops, params = measure_complexity(runner.model, batch, flops_scope)
        ms = measure_latency_ms(runner.model, batch, repeats) if latency else None
        rows.append(TableRow(subnet, flops, params, float(metrics[name]), ms,
                             trained=subnet.key not in untrained))
        bar.update()
    return rows, name
