"""Calibrate a checkpoint for a list of subnets (tools/calibrate_bn.py)."""
import copy
import sys
from typing import Iterable, List, Optional

from mmengine.config import Config
from mmengine.utils import ProgressBar

from ..engine.hooks.mutual_learning_hook import MutualLearningHook
from ..engine.trained_space import TrainedSpace, check_trained
from ..ops import WidthGrid
from .bn_calibration import calibrate_bn
from .calibrated_subnet_hook import CALIBRATION_KEY
from .checked_checkpoint import load_checked_checkpoint
from ..fileio import same_file, save_torch
from .subnet import Subnet
from ..datasets.pipeline_reading import (dataset_pipeline_cfg, multi_resolution_cfg,
                                         pipeline_clip_len, pipeline_output_size)
from ..datasets.wrappers import nested_dataset_cfgs
from ..utils import registered_class
from .apply_subnet import apply_subnet, view_owning_backbone


def trained_subnets(cfg: Config, widths: Optional[List[float]] = None,
                    scales: Optional[list] = None,
                    frames: Optional[List[int]] = None,
                    proposals: Optional[List[int]] = None) -> List[Subnet]:
    """The subnets to calibrate: given ones, else what the config trained (the
    MutualLearningHook's width grid x the MultiResolution scales x frames, or
    the hook's ``batch_views`` scales x frames), x the given ``proposals``
    (two-stage detectors; default: the config's own).

    A backbone that makes its own input views (SlowFast, no MultiResolution)
    trained views of its input: the scales and frames are then those views in
    absolute terms (see :func:`backbone_view_sizes`)."""
    hook = next((h for h in cfg.get('custom_hooks', [])
                 if h.get('type') in ('MutualLearningHook', MutualLearningHook)), None)
    views = multi_resolution_cfg(cfg.train_dataloader.dataset)
    if views is None and hook is not None and hook.get('batch_views'):
        views = hook['batch_views']  # the same keys: scales, frames
    if widths is None:
        if hook is None:
            raise ValueError('give --widths: the config has no MutualLearningHook to '
                             'read the trained width range from')
        widths = list(WidthGrid(hook.get('width_range', (0.25, 1.0)),
                                hook.get('width_step', 0.05)).widths)
    if views is None and (scales is None or frames is None) and \
            view_owning_backbone(cfg.model.backbone) is not None:
        view_scales, view_frames = backbone_view_sizes(cfg, need_size=scales is None,
                                                       need_frames=frames is None)
        scales = view_scales if scales is None else scales
        frames = view_frames if frames is None else frames
    if scales is None:
        scales = views.get('scales') if views else None
    if frames is None:
        frames = views.get('frames') if views else None
    return [Subnet(w, s, f, p) for w in widths for s in (scales or [None])
            for f in (frames or [None]) for p in (proposals or [None])]


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
    for dataset in nested_dataset_cfgs(loader['dataset']):
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
