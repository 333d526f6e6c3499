"""Calibrate a checkpoint for a list of configurations (tools/calibrate_bn.py)."""
import copy
from typing import Iterable, List, Optional

import torch
from mmengine.config import Config
from mmengine.dist import all_reduce, get_world_size, is_distributed
from mmengine.utils import ProgressBar

from ..engine.hooks.mutual_learning_hook import MutualLearningHook
from ..ops import WidthGrid
from .bn_calibration import BNStats, calibrate_bn
from .calibrated_config_hook import CALIBRATION_KEY
from .configuration import SubnetConfig
from .pipeline_config import set_pipeline_config


def trained_configs(cfg: Config, widths: Optional[List[float]] = None,
                    scales: Optional[list] = None,
                    frames: Optional[List[int]] = None) -> List[SubnetConfig]:
    """The configurations to calibrate: given ones, else what the config trained
    (the MutualLearningHook's width grid x the MultiResolution scales x frames)."""
    hook = next((h for h in cfg.get('custom_hooks', [])
                 if h.get('type') in ('MutualLearningHook', MutualLearningHook)), None)
    views = _multi_resolution_cfg(cfg.train_dataloader.dataset)
    if widths is None:
        if hook is None:
            raise ValueError('give --widths: the config has no MutualLearningHook to '
                             'read the trained width range from')
        widths = list(WidthGrid(hook.get('width_range', (0.25, 1.0)),
                                hook.get('width_step', 0.05)).widths)
    if scales is None:
        scales = views.get('scales') if views else None
    if frames is None:
        frames = views.get('frames') if views else None
    return [SubnetConfig(w, s, f) for w in widths for s in (scales or [None])
            for f in (frames or [None])]


def _multi_resolution_cfg(dataset_cfg) -> Optional[dict]:
    stack = [dataset_cfg]
    while stack:
        node = stack.pop()
        for t in node.get('pipeline', []) or []:
            if t.get('type') == 'MultiResolution':
                return t
        if node.get('dataset'):
            stack.append(node['dataset'])
        stack.extend(node.get('datasets', []) or [])
    return None


def calibration_dataloader_cfg(cfg: Config, batch_size: Optional[int] = None) -> dict:
    """Training images through the deterministic test pipeline, in order."""
    loader = copy.deepcopy(cfg.train_dataloader)
    test_pipeline = (cfg.get('test_dataloader') or cfg.get('val_dataloader')
                     or {}).get('dataset', {}).get('pipeline')
    if test_pipeline is None:
        raise ValueError('calibration needs a test (or val) pipeline in the config')
    dataset = loader['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    dataset['pipeline'] = copy.deepcopy(test_pipeline)
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader.pop('batch_sampler', None)
    if batch_size:
        loader['batch_size'] = batch_size
    return loader


def average_across_ranks(stats: BNStats) -> BNStats:
    """Pool statistics calibrated on each rank's share of the data (equal counts):
    mean of means, and mean of (var + mean^2) minus the pooled mean^2."""
    if not is_distributed() or get_world_size() == 1:
        return stats
    pooled = {}
    for name, (mean, var) in stats.items():
        second = var + mean * mean
        mean = all_reduce(mean.clone(), op='mean')
        second = all_reduce(second, op='mean')
        pooled[name] = (mean, second - mean * mean)
    return pooled


def calibrate_configs(model, dataloader, configs: Iterable[SubnetConfig],
                      num_batches: int, progress: bool = True) -> dict:
    """Calibrate ``model`` at every configuration; returns the checkpoint entry
    ``{config.key: {'config': ..., 'stats': {bn: (mean, var)}}}``. The model's
    BN buffers are restored afterwards."""
    configs = list(configs)
    saved = {k: v.clone() for k, v in model.state_dict().items()
             if 'running_' in k or 'num_batches_tracked' in k}
    bar = ProgressBar(len(configs)) if progress else None
    result = {}
    try:
        for config in configs:
            set_pipeline_config(dataloader.dataset, config.scale, config.frames)
            stats = calibrate_bn(model, iter(dataloader), num_batches, config.width)
            result[config.key] = dict(config=config.as_dict(),
                                      stats=average_across_ranks(stats))
            if bar:
                bar.update()
    finally:
        model.load_state_dict(saved, strict=False)
    return result


def calibrate_checkpoint(cfg: Config, checkpoint: str, out: str,
                         configs: List[SubnetConfig], num_batches: int = 10,
                         batch_size: Optional[int] = None) -> dict:
    """Load ``checkpoint`` into the config's model, calibrate every configuration
    and write the checkpoint with the statistics added under
    ``bn_calibration`` (the trained weights and statistics are unchanged)."""
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.load_from = None
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    ckpt = runner.load_checkpoint(checkpoint, map_location='cpu')
    dataloader = Runner.build_dataloader(calibration_dataloader_cfg(cfg, batch_size),
                                         seed=runner.seed)
    calibration = dict(ckpt.get(CALIBRATION_KEY) or {})
    calibration.update(calibrate_configs(runner.model, dataloader, configs, num_batches))
    ckpt[CALIBRATION_KEY] = calibration
    torch.save(ckpt, out)
    return calibration
