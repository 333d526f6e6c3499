"""Calibrate a checkpoint for a list of configurations (tools/calibrate_bn.py)."""
import copy
from typing import Iterable, List, Optional

import torch
from mmengine.config import Config
from mmengine.utils import ProgressBar

from ..engine.hooks.mutual_learning_hook import MutualLearningHook
from ..engine.trained_space import TrainedSpace, check_trained
from ..ops import WidthGrid
from .bn_calibration import calibrate_bn
from .calibrated_config_hook import CALIBRATION_KEY
from .configuration import SubnetConfig
from .pipeline_config import (apply_config, backbone_class, constructor_default,
                              dataset_pipeline_cfg, has_slow_input, pipeline_clip_len,
                              pipeline_output_size)


def trained_configs(cfg: Config, widths: Optional[List[float]] = None,
                    scales: Optional[list] = None,
                    frames: Optional[List[int]] = None) -> List[SubnetConfig]:
    """The configurations to calibrate: given ones, else what the config trained
    (the MutualLearningHook's width grid x the MultiResolution scales x frames).

    A SlowFast backbone (``set_slow_input``, no MultiResolution) trained views of
    its Slow input: the scales and frames are then its ``slow_size_factors`` and
    ``slow_frame_factors`` applied to the full Slow input as the backbone rounds
    them, in absolute terms (short side, frames; see :func:`slow_input_views`)."""
    hook = next((h for h in cfg.get('custom_hooks', [])
                 if h.get('type') in ('MutualLearningHook', MutualLearningHook)), None)
    views = _multi_resolution_cfg(cfg.train_dataloader.dataset)
    if widths is None:
        if hook is None:
            raise ValueError('give --widths: the config has no MutualLearningHook to '
                             'read the trained width range from')
        widths = list(WidthGrid(hook.get('width_range', (0.25, 1.0)),
                                hook.get('width_step', 0.05)).widths)
    if views is None and (scales is None or frames is None) and \
            has_slow_input(cfg.model.backbone):
        slow_scales, slow_frames = slow_input_views(cfg, need_size=scales is None,
                                                    need_frames=frames is None)
        scales = slow_scales if scales is None else scales
        frames = slow_frames if frames is None else frames
    if scales is None:
        scales = views.get('scales') if views else None
    if frames is None:
        frames = views.get('frames') if views else None
    return [SubnetConfig(w, s, f) for w in widths for s in (scales or [None])
            for f in (frames or [None])]


def slow_input_views(cfg: Config, need_size: bool = True, need_frames: bool = True):
    """(sizes, frames) of the Slow input views a SlowFast config trains.

    The full Slow input is the first of the train, val and test pipelines whose
    output size is fixed (:func:`pipeline_output_size`: its short side, e.g. the
    train ``Resize((224, 224))``) and ``floor(clip_len / resample_rate)`` frames of
    its ``SampleFrames``; each factor gives ``max(1, round(factor * full))`` (the
    backbone's own rounding), duplicates dropped. E.g. SlowFast-4x16 (224 px,
    32 frames, rate 8): sizes [224, 178, 142], frames [4, 2] (5/8 and 3/8 of 4
    frames both round to 2). The sizes are those the backbone was trained at;
    a test pipeline at another size (e.g. ``ThreeCrop(256)``) runs the Slow
    pathway of each configuration at these absolute sizes.

    Raises:
        ValueError: the size or clip length cannot be read from the config.
    """
    bb = cfg.model.backbone
    cls = backbone_class(bb)

    def arg(name):
        return bb[name] if name in bb else constructor_default(cls, name)

    pipelines = [dataset_pipeline_cfg(cfg.get(split))
                 for split in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    pipeline = next((p for p in pipelines if pipeline_output_size(p) is not None), None)
    sizes = frames = None
    if need_size:
        if pipeline is None:
            raise ValueError(
                f'{cls.__name__}: no train/val/test pipeline of the config ends at a '
                'fixed size (a crop or a fixed-size Resize), so the Slow input sizes '
                'of its views are unknown; give them: --resolutions (scales=...)')
        full = pipeline_output_size(pipeline)
        sizes = _unique(cls.view_input(full, 1, f, 1.0)[0]
                        for f in arg('slow_size_factors'))
    if need_frames:
        clip_len = next((pipeline_clip_len(p) for p in [pipeline] + pipelines
                         if pipeline_clip_len(p) is not None), None)
        if clip_len is None:
            raise ValueError(
                f'{cls.__name__}: no pipeline of the config has a SampleFrames, so the '
                'Slow frame counts of its views are unknown; give them: --frames '
                '(frames=...)')
        full = cls.slow_frames_of(clip_len, arg('resample_rate'))
        frames = _unique(cls.view_input(1, full, 1.0, f)[1]
                         for f in arg('slow_frame_factors'))
    return sizes, frames


def _unique(values) -> list:
    return list(dict.fromkeys(values))


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


def calibrate_configs(model, dataloader, configs: Iterable[SubnetConfig],
                      num_batches: int, progress: bool = True) -> dict:
    """Calibrate ``model`` at every configuration; returns the checkpoint entry
    ``{config.key: {'config': ..., 'stats': {bn: (mean, var)}}}``. The model's
    BN buffers are restored afterwards (it stays at the last configuration).
    Each configuration is applied by :func:`apply_config` (pipeline, or the Slow
    pathway of a SlowFast backbone)."""
    configs = list(configs)
    saved = {k: v.clone() for k, v in model.state_dict().items()
             if 'running_' in k or 'num_batches_tracked' in k}
    bar = ProgressBar(len(configs)) if progress else None
    result = {}
    try:
        for config in configs:
            apply_config(model, dataloader.dataset, config)
            stats = calibrate_bn(model, iter(dataloader), num_batches, config.width)
            result[config.key] = dict(config=config.as_dict(),
                                      stats=stats)
            if bar:
                bar.update()
    finally:
        model.load_state_dict(saved, strict=False)
    return result


def calibrate_checkpoint(cfg: Config, checkpoint: str, out: str,
                         configs: List[SubnetConfig], num_batches: int = 10,
                         batch_size: Optional[int] = None,
                         allow_untrained: bool = False) -> dict:
    """Load ``checkpoint`` into the config's model, calibrate every configuration
    and write the checkpoint with the statistics added under
    ``bn_calibration`` (the trained weights and statistics are unchanged).

    Configurations outside what the checkpoint was trained on (its
    ``meta['mutual_learning']``) are refused unless ``allow_untrained``."""
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.load_from = None
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    ckpt = runner.load_checkpoint(checkpoint, map_location='cpu')
    check_trained(configs, TrainedSpace.from_checkpoint(ckpt), allow_untrained)
    dataloader = Runner.build_dataloader(calibration_dataloader_cfg(cfg, batch_size),
                                         seed=runner.seed)
    calibration = dict(ckpt.get(CALIBRATION_KEY) or {})
    calibration.update(calibrate_configs(runner.model, dataloader, configs, num_batches))
    ckpt[CALIBRATION_KEY] = calibration
    torch.save(ckpt, out)
    return calibration
