"""Pointing a model and its (test-style) pipeline at one configuration.

Where a configuration's ``scale``/``frames`` act depends on the backbone: for
most models on the data (the pipeline's last ``Resize`` and ``SampleFrames``,
:func:`set_pipeline_config`); for a backbone with model-side input views
(``SlimResNet3dSlowFast``, which has ``set_slow_input``) on the backbone's Slow
pathway, since the clip must stay whole for the Fast pathway. :func:`apply_config`
(built objects) and :func:`apply_config_cfg` (config dicts) make that choice.
"""
import inspect
from typing import Optional

from ..datasets.transforms.multi_resolution import _is_resize, _normalize_scale, _type_name
from ..models.slimming import find_slim_backbone, set_active_config


def _transforms(dataset) -> list:
    while not hasattr(dataset, 'pipeline') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset  # dataset wrappers
    return getattr(dataset.pipeline, 'transforms', [])


def set_pipeline_config(dataset, scale=None, frames: Optional[int] = None) -> None:
    """Make ``dataset``'s pipeline produce inputs at ``scale`` (and ``frames``).

    ``scale`` goes to the LAST ``*Resize`` of the pipeline (for detection the test
    ``Resize(keep_ratio=True)``; for video a final ``Resize(keep_ratio=False)``
    after the crop), ``frames`` to ``SampleFrames``: ``clip_len`` becomes
    ``frames`` and ``frame_interval`` grows so the clip spans the same time.
    """
    transforms = _transforms(dataset)
    if scale is not None:
        resizes = [t for t in transforms if _is_resize(t)]
        if not resizes:
            raise ValueError('the pipeline has no Resize to set the scale '
                             f'{scale!r} on; its transforms: '
                             f'{[type(t).__name__ for t in transforms]}')
        resizes[-1].scale = _normalize_scale(scale)
    if frames is not None:
        samplers = [t for t in transforms if type(t).__name__ == 'SampleFrames']
        if not samplers:
            raise ValueError(f'the pipeline has no SampleFrames to set frames={frames} on')
        sampler = samplers[-1]
        if not hasattr(sampler, '_mutual_span'):
            sampler._mutual_span = sampler.clip_len * sampler.frame_interval
        sampler.clip_len = int(frames)
        sampler.frame_interval = max(1, round(sampler._mutual_span / int(frames)))


def set_pipeline_cfg(pipeline: list, scale=None, frames: Optional[int] = None) -> list:
    """The config-dict twin of :func:`set_pipeline_config`, for writing a config
    whose pipeline is at one configuration (``tools/export_subnet.py``)."""
    if scale is not None:
        resizes = [t for t in pipeline if _is_resize(t)]
        if not resizes:
            raise ValueError(f'the pipeline has no Resize to set the scale {scale!r} on')
        resizes[-1]['scale'] = _normalize_scale(scale)
        resizes[-1].setdefault('keep_ratio', False)
    if frames is not None:
        for t in pipeline:
            if t.get('type') == 'SampleFrames':
                span = t.get('clip_len', 1) * t.get('frame_interval', 1)
                t['clip_len'] = int(frames)
                t['frame_interval'] = max(1, round(span / int(frames)))
    return pipeline


# ----------------------------------------------------- configuration -> model
def slow_input_backbone(model):
    """The slim backbone of ``model`` if it takes the configuration's input size
    itself (``set_slow_input``: SlowFast), else None."""
    backbone = find_slim_backbone(model)
    return backbone if hasattr(backbone, 'set_slow_input') else None


def apply_config(model, dataset, config) -> None:
    """Put ``model`` (and ``dataset``'s pipeline) at ``config``
    (:class:`~mutual_mm.deploy.SubnetConfig`): the width on the model; ``scale``
    and ``frames`` on the Slow pathway of a SlowFast backbone (short side and
    frame count of the Slow input, None = whole; the pipeline, thus the Fast
    pathway's input, stays as it is), else on the pipeline
    (:func:`set_pipeline_config`). ``dataset`` may be None for a SlowFast model."""
    set_active_config(model, config.width)
    backbone = slow_input_backbone(model)
    if backbone is not None:
        if isinstance(config.scale, (tuple, list)):
            raise ValueError(
                f'configuration {config.key}: {type(backbone).__name__} takes the '
                'short side of its Slow input as one int, not a (w, h) pair')
        backbone.set_slow_input(config.scale, config.frames)
    else:
        set_pipeline_config(dataset, config.scale, config.frames)


def backbone_class(backbone_cfg: dict):
    """The class a backbone config dict builds, or None if it cannot be found."""
    kind = backbone_cfg.get('type')
    if isinstance(kind, type):
        return kind
    from mmengine.registry import MODELS as ROOT
    from ..registry import MODELS
    for registry in (MODELS, ROOT):
        try:
            cls = registry.get(kind)
        except Exception:  # noqa: BLE001  (unknown scope or name)
            cls = None
        if cls is not None:
            return cls
    return None


def has_slow_input(backbone_cfg: dict) -> bool:
    """Whether a backbone config builds a backbone with ``set_slow_input``."""
    return hasattr(backbone_class(backbone_cfg) or object, 'set_slow_input')


def constructor_default(cls, name: str):
    """Default of argument ``name`` of ``cls``'s constructor (searched along the
    MRO, for mixins whose ``__init__`` passes ``**kwargs`` on)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        param = inspect.signature(init).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise KeyError(f'{cls.__name__} has no default for {name!r}')


def apply_config_cfg(cfg, config) -> None:
    """The config-dict twin of :func:`apply_config` for scale/frames (the width is
    the exported model's own): a SlowFast backbone gets
    ``slow_input=(scale, frames)``, other models' val/test pipelines the size and
    frames (:func:`set_pipeline_cfg`)."""
    if has_slow_input(cfg.model.backbone):
        if isinstance(config.scale, (tuple, list)):
            raise ValueError(f'configuration {config.key}: the Slow input size is one '
                             'int (its short side)')
        cfg.model.backbone.slow_input = (None if config.scale is None and
                                         config.frames is None else
                                         [config.scale, config.frames])
        return
    for split in ('val_dataloader', 'test_dataloader'):
        pipeline = dataset_pipeline_cfg(cfg.get(split))
        if pipeline is not None:
            set_pipeline_cfg(pipeline, config.scale, config.frames)


# --------------------------------------------------- what a pipeline outputs
def dataset_pipeline_cfg(loader_cfg: dict) -> Optional[list]:
    """The pipeline list of a dataloader config (dataset wrappers unwrapped)."""
    dataset = (loader_cfg or {}).get('dataset') or {}
    while 'pipeline' not in dataset and dataset.get('dataset'):
        dataset = dataset['dataset']
    return dataset.get('pipeline')


def _short_side(size) -> Optional[int]:
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    if isinstance(size, (tuple, list)) and len(size) == 2 and \
            all(isinstance(s, int) and s > 0 for s in size):
        return min(size)
    return None


def pipeline_output_size(pipeline: list) -> Optional[int]:
    """Short side of the frames a pipeline config outputs, as its LAST transform
    that sets the size states it: ``CenterCrop``/``ThreeCrop``/``TenCrop``
    (``crop_size``), ``RandomCrop`` (``size``), a ``Resize`` to a short side
    (``scale=(-1, s)``) or to a fixed size (``keep_ratio=False``); None when that
    transform leaves it open (random-scale crops, keep-ratio fits, views)."""
    size = None
    for t in pipeline or []:
        kind = _type_name(t).split('.')[-1]
        if kind in ('CenterCrop', 'ThreeCrop', 'TenCrop'):
            size = _short_side(t.get('crop_size'))
        elif kind == 'RandomCrop':
            size = _short_side(t.get('size'))
        elif kind == 'Resize':
            scale = t.get('scale')
            if isinstance(scale, (tuple, list)) and len(scale) == 2 and -1 in scale:
                size = _short_side(max(scale))
            else:
                size = _short_side(scale) if t.get('keep_ratio') is False else None
        elif kind == 'MultiResolution' or (kind.startswith(('Random', 'MultiScale')) and
                                           any(w in kind for w in ('Crop', 'Resize',
                                                                   'Rescale'))):
            size = None
    return size


def pipeline_clip_len(pipeline: list) -> Optional[int]:
    """``clip_len`` of the last ``SampleFrames`` of a pipeline config, or None."""
    samplers = [t for t in pipeline or []
                if _type_name(t).split('.')[-1] == 'SampleFrames']
    return int(samplers[-1].get('clip_len', 1)) if samplers else None
