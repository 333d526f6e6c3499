"""Calibrate a checkpoint for a list of subnets (tools/calibrate_bn.py)."""
import copy
import logging
import os
import sys
import zipfile
from typing import Iterable, List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..engine.hooks.mutual_learning_hook import MutualLearningHook
from ..engine.trained_space import META_KEY as TRAINED_META_KEY
from ..engine.trained_space import TrainedSpace, check_trained
from ..ops import WidthGrid
from .bn_calibration import calibrate_bn
from .calibrated_subnet_hook import CALIBRATION_KEY
from .checked_checkpoint import load_checked_checkpoint
from ..fileio import check_readable_checkpoint, same_file, save_torch
from .subnet import Subnet
from ..datasets.pipeline_reading import (dataset_pipeline_cfg, find_multi_resolution,
                                         pipeline_clip_len, pipeline_output_size)
from ..datasets.wrappers import nested_datasets
from ..utils import registered_class
from .apply_subnet import apply_subnet, view_owning_backbone


def trained_subnets(cfg: Config, widths: Optional[List[float]] = None,
                    scales: Optional[list] = None,
                    frames: Optional[List[int]] = None,
                    proposals: Optional[List[int]] = None,
                    checkpoint: Union[str, dict, None] = None) -> List[Subnet]:
    """The subnets to calibrate, tabulate or export: the given widths, scales and
    frames, and for each one not given what the checkpoint was trained on, x the
    given ``proposals`` (two-stage detectors; default: the config's own).

    What was trained is read from ``checkpoint``'s record (its
    :class:`~mutual_mm.engine.TrainedSpace`, written by ``MutualLearningHook``):
    the width grid and the trained input sizes and frame counts. The config is
    read only for a checkpoint without a record (or none given), and a warning
    says so, naming the checkpoint: then the config's ``MutualLearningHook``
    (its arguments, its defaults) gives the widths, and its ``batch_views`` or
    the pipeline's ``MultiResolution`` the views. Such subnets are listed, not
    vouched for: a checkpoint without a record counts only its full width as
    trained (:func:`~mutual_mm.engine.trained_space.check_trained`).

    A backbone that makes its own input views (SlowFast) records none: its
    views' sizes and frames are those of the config's input in absolute terms
    (see :func:`backbone_view_sizes`).

    Args:
        checkpoint: a checkpoint file or a loaded checkpoint.

    Raises:
        ValueError: no widths given and neither a record nor a
            ``MutualLearningHook`` in the config to read them from.
    """
    space = read_trained_space(checkpoint)
    if space is None:
        hook = _config_hook(cfg)
        views = find_multi_resolution(cfg.train_dataloader.dataset)
        if views is None and hook is not None and hook.batch_views:
            views = hook.batch_views  # the same keys: scales, frames
        trained_widths = hook.grid.widths if hook is not None else None
        trained_scales = views.get('scales') if views else None
        trained_frames = views.get('frames') if views else None
        print_log(_no_record_message(checkpoint), logger='current', level=logging.WARNING)
    else:
        trained_widths = WidthGrid(space.width_range, space.width_step).widths
        trained_scales, trained_frames = space.scales, space.frames
    if widths is None:
        if trained_widths is None:
            raise ValueError('give --widths: the checkpoint has no record of its trained '
                             'widths, and the config no MutualLearningHook to read them from')
        widths = list(trained_widths)
    if trained_scales is None and trained_frames is None and \
            (scales is None or frames is None) and \
            view_owning_backbone(cfg.model.backbone) is not None:
        trained_scales, trained_frames = backbone_view_sizes(
            cfg, need_size=scales is None, need_frames=frames is None)
    scales = trained_scales if scales is None else scales
    frames = trained_frames if frames is None else frames
    return [Subnet(w, s, f, p) for w in widths for s in (scales or [None])
            for f in (frames or [None]) for p in (proposals or [None])]


def read_trained_space(checkpoint: Union[str, dict, None]) -> Optional[TrainedSpace]:
    """The record of what ``checkpoint`` (a file or a loaded checkpoint) was
    trained on; None without one (or without a checkpoint). A file is mapped,
    not read: only its meta is looked at."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint, (str, os.PathLike)):
        check_readable_checkpoint(checkpoint)
        # mapping needs torch's zip format (a legacy file is read whole)
        checkpoint = torch.load(checkpoint, map_location='cpu', weights_only=False,
                                mmap=zipfile.is_zipfile(checkpoint))
    return TrainedSpace.from_checkpoint(checkpoint)


def _no_record_message(checkpoint) -> str:
    from_config = ('the subnets are read from the config (its MutualLearningHook and '
                   'train pipeline)')
    if checkpoint is None:
        return f'no checkpoint given, so {from_config}'
    name = (f'checkpoint {checkpoint}' if isinstance(checkpoint, (str, os.PathLike))
            else 'the checkpoint')
    return (f'{name} holds no record of what it was trained on (meta '
            f'{TRAINED_META_KEY!r}: trained without MutualLearningHook, or before it kept '
            f'one), so {from_config}; only its full width counts as trained: pass '
            '--allow-untrained (allow_untrained=True) to use narrower widths anyway')


def _config_hook(cfg: Config) -> Optional[MutualLearningHook]:
    """The config's MutualLearningHook, built: its arguments checked, its
    defaults the hook's own."""
    entry = next((h for h in cfg.get('custom_hooks', [])
                  if h.get('type') in ('MutualLearningHook', MutualLearningHook)), None)
    if entry is None:
        return None
    # 'priority' is the runner's, as in Runner.register_hook
    return MutualLearningHook(**{k: v for k, v in entry.items()
                                 if k not in ('type', 'priority')})


def backbone_view_sizes(cfg: Config, need_size: bool = True, need_frames: bool = True):
    """(sizes, frames) of the input views a backbone that owns its views trains,
    in absolute terms (its ``view_input_sizes``).

    The full input is the first of the train, val and test pipelines whose
    output size is fixed (:func:`pipeline_output_size`: its short side, e.g. the
    train ``Resize((224, 224))``) and the ``clip_len`` of its ``SampleFrames``.
    The sizes are those the backbone was trained at; a test pipeline at another
    size (e.g. ``ThreeCrop(256)``) runs each subnet at these absolute sizes.

    Raises:
        ValueError: the size or clip length cannot be read from the config.
    """
    cls = registered_class(cfg.model.backbone)
    pipelines = [dataset_pipeline_cfg(cfg.get(split))
                 for split in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    pipeline = next((p for p in pipelines if pipeline_output_size(p) is not None), None)
    full_size = clip_len = None
    if need_size:
        if pipeline is None:
            raise ValueError(
                f'{cls.__name__}: no train/val/test pipeline of the config ends at a '
                'fixed size (a crop or a fixed-size Resize), so the input sizes '
                'of its views are unknown; give them: --resolutions (scales=...)')
        full_size = pipeline_output_size(pipeline)
    if need_frames:
        clip_len = next((pipeline_clip_len(p) for p in [pipeline] + pipelines
                         if pipeline_clip_len(p) is not None), None)
        if clip_len is None:
            raise ValueError(
                f'{cls.__name__}: no pipeline of the config has a SampleFrames, so the '
                'frame counts of its views are unknown; give them: --frames '
                '(frames=...)')
    return cls.view_input_sizes(cfg.model.backbone, full_size, clip_len)


def calibration_dataloader_cfg(cfg: Config, batch_size: Optional[int] = None) -> dict:
    """Training images through the deterministic test pipeline, in order."""
    loader = copy.deepcopy(cfg.train_dataloader)
    test_pipeline = (cfg.get('test_dataloader') or cfg.get('val_dataloader')
                     or {}).get('dataset', {}).get('pipeline')
    if test_pipeline is None:
        raise ValueError('calibration needs a test (or val) pipeline in the config')
    for dataset in nested_datasets(loader['dataset']):
        if 'pipeline' in dataset:
            dataset['pipeline'] = copy.deepcopy(test_pipeline)
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader.pop('batch_sampler', None)
    if batch_size:
        loader['batch_size'] = batch_size
    return loader


def calibrate_subnets(model, dataloader, subnets: Iterable[Subnet],
                      num_batches: int, progress: bool = True, exact: bool = False) -> dict:
    """Calibrate ``model`` at every subnet (``exact``: see
    :func:`~mutual_mm.deploy.bn_calibration.calibrate_bn`); returns the checkpoint entry
    ``{subnet.key: {'subnet': ..., 'stats': {bn: (mean, var)}}}``. The model's
    BN buffers are restored afterwards (it stays at the last subnet).
    Each subnet is applied by :func:`apply_subnet` (pipeline, or the Slow
    pathway of a SlowFast backbone). Subnets that differ only in test-time
    knobs (proposals) share one network, calibrated once."""
    subnets = list(dict.fromkeys(subnet.network for subnet in subnets))
    saved = {k: v.clone() for k, v in model.state_dict().items()
             if 'running_' in k or 'num_batches_tracked' in k}
    # sys.stdout as it is now: a caller that redirects it gets the bar too
    bar = ProgressBar(len(subnets), file=sys.stdout) if progress else None
    result = {}
    try:
        for subnet in subnets:
            apply_subnet(model, dataloader.dataset, subnet)
            stats = calibrate_bn(model, iter(dataloader), num_batches, subnet.width,
                                 exact=exact)
            result[subnet.key] = dict(subnet=subnet.as_dict(),
                                      stats=stats)
            if bar:
                bar.update()
    finally:
        model.load_state_dict(saved, strict=False)
    return result


def calibrate_checkpoint(cfg: Config, checkpoint: str, out: str,
                         subnets: List[Subnet], num_batches: int = 10,
                         batch_size: Optional[int] = None,
                         allow_untrained: bool = False, exact: bool = False) -> dict:
    """Load ``checkpoint`` into the config's model, calibrate every subnet
    and write the checkpoint with the statistics added under
    ``bn_calibration`` (the trained weights and statistics are unchanged).

    Subnets outside what the checkpoint was trained on (its
    ``meta['mutual_learning']``) are refused unless ``allow_untrained``;
    ``exact``: one pass per BN depth (every layer's statistics independent of
    the batching, see :func:`~mutual_mm.deploy.bn_calibration.calibrate_bn`)."""
    from mmengine.runner import Runner
    if same_file(checkpoint, out):
        raise ValueError(f'calibrate_checkpoint: out={out!r} is the input checkpoint; '
                         'write the calibrated checkpoint to another file (an interrupted '
                         'or failed write must not be able to touch the trained model)')
    cfg = copy.deepcopy(cfg)
    cfg.load_from = None
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    ckpt = load_checked_checkpoint(runner, checkpoint)
    check_trained(subnets, TrainedSpace.from_checkpoint(ckpt), allow_untrained)
    dataloader = Runner.build_dataloader(calibration_dataloader_cfg(cfg, batch_size),
                                         seed=runner.seed)
    calibration = dict(ckpt.get(CALIBRATION_KEY) or {})
    calibration.update(calibrate_subnets(runner.model, dataloader, subnets, num_batches,
                                         exact=exact))
    ckpt[CALIBRATION_KEY] = calibration
    save_torch(ckpt, out)
    return calibration
