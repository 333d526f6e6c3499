"""Reading a config's pipelines: where they are, what size and frames they
output, their MultiResolution (dataset wrappers unwrapped everywhere)."""
from typing import Optional

from .transforms.multi_resolution import _type_name
from .wrappers import nested_dataset_cfgs


def dataset_pipeline_cfg(loader_cfg: dict) -> Optional[list]:
    """The pipeline list of a dataloader config (dataset wrappers unwrapped)."""
    for node in nested_dataset_cfgs((loader_cfg or {}).get('dataset')):
        if 'pipeline' in node:
            return node['pipeline']
    return None


def multi_resolution_cfg(dataset_cfg) -> Optional[dict]:
    """The MultiResolution entry of a dataset config's pipeline, or None."""
    for node in nested_dataset_cfgs(dataset_cfg):
        for t in node.get('pipeline', []) or []:
            if _type_name(t).split('.')[-1] == 'MultiResolution':
                return t
    return None


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
