"""Evaluate a calibrated checkpoint over configurations: the lookup table."""
import copy
from typing import List, Optional

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from ..engine.trained_space import TrainedSpace, check_trained
from .calibrate_checkpoint import calibrate_configs, calibration_dataloader_cfg
from .calibrated_config_hook import CalibratedConfigHook
from .complexity import measure_complexity, measure_latency_ms
from .configuration import SubnetConfig
from .lookup_table import TableRow
from .pipeline_config import apply_config


def pick_metric(metrics: dict, name: Optional[str]) -> str:
    if name is not None:
        if name not in metrics:
            raise KeyError(f'metric {name!r} is not among the evaluator\'s: '
                           f'{sorted(metrics)}')
        return name
    for hint in ('bbox_mAP', 'segm_mAP', 'mAP', 'top1', 'acc'):
        for key in metrics:
            if key.endswith(hint) or f'/{hint}' in key:
                return key
    return next(iter(metrics))


def build_lookup_table(cfg: Config, checkpoint: str, configs: List[SubnetConfig],
                       metric: Optional[str] = None, latency: bool = False,
                       num_batches: int = 10, repeats: int = 10,
                       flops_scope: str = 'model', allow_untrained: bool = False):
    """Evaluate ``configs`` of ``checkpoint`` with the config's own test metric.

    Each configuration runs with BN statistics calibrated for it: taken from the
    checkpoint's ``bn_calibration`` when present, else calibrated here first
    (``num_batches`` training batches through the test pipeline). FLOPs and
    parameters are measured on one test input at the configuration, of the
    whole model or of its feature extractor (``flops_scope``: 'model' or
    'features', see :data:`mutual_mm.deploy.complexity.FLOPS_SCOPES`).
    Configurations outside what the checkpoint was trained on are refused, or
    with ``allow_untrained`` tabulated with ``trained=False``.

    Returns:
        (rows, metric name)
    """
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    hook = CalibratedConfigHook(allow_untrained=allow_untrained)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([hook])
    loaded = runner.load_checkpoint(checkpoint, map_location='cpu')
    untrained = check_trained(configs, TrainedSpace.from_checkpoint(loaded), allow_untrained)
    runner._has_loaded = True  # loaded above; runner.test() must not reload
    calibration = dict(hook.calibration or {})
    missing = [c for c in configs if c.key not in calibration]
    if missing:
        loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=runner.seed)
        calibration.update(calibrate_configs(runner.model, loader, missing, num_batches))
    hook.calibration = calibration

    probe_loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader),
                                           seed=runner.seed)
    rows, name = [], metric
    bar = ProgressBar(len(configs))
    for config in configs:
        hook.config = config
        metrics = runner.test()
        name = pick_metric(metrics, name)
        apply_config(runner.model, probe_loader.dataset, config)
        batch = next(iter(probe_loader))
        flops, params = measure_complexity(runner.model, batch, flops_scope)
        ms = measure_latency_ms(runner.model, batch, repeats) if latency else None
        rows.append(TableRow(config, flops, params, float(metrics[name]), ms,
                             trained=config.key not in untrained))
        bar.update()
    return rows, name
