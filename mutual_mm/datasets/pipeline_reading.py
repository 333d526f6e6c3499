"""Reading a config's pipelines: where they are, what size and frames they
output, their MultiResolution (dataset wrappers unwrapped everywhere)."""
from typing import Optional

from ..scale import short_side
from .transforms.multi_resolution import _type_name
from .wrappers import field, nested_datasets


def dataset_pipeline_cfg(loader_cfg: dict) -> Optional[list]:
    """The pipeline list of a dataloader config (dataset wrappers unwrapped)."""
    for node in nested_datasets((loader_cfg or {}).get('dataset')):
        if 'pipeline' in node:
            return node['pipeline']
    return None


def find_multi_resolution(dataset):
    """The MultiResolution in a data set's pipeline (dataset wrappers such as
    RepeatDataset / ConcatDataset / ClassBalancedDataset unwrapped): the built
    transform of a built data set, the config dict of a data set's config; None
    without one."""
    for node in nested_datasets(dataset):
        pipeline = field(node, 'pipeline')
        transforms = pipeline if isinstance(pipeline, list) else \
            getattr(pipeline, 'transforms', None)
        for t in transforms or []:
            if _type_name(t).split('.')[-1] == 'MultiResolution':
                return t
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
            size = short_side(t.get('crop_size'))
        elif kind == 'RandomCrop':
            size = short_side(t.get('size'))
        elif kind == 'Resize':
            scale = t.get('scale')
            if isinstance(scale, (tuple, list)) and len(scale) == 2 and -1 in scale:
                size = short_side(max(scale))
            else:
                size = short_side(scale) if t.get('keep_ratio') is False else None
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
