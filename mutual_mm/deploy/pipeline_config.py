"""Pointing a built (test-style) pipeline at one configuration's input size."""
from typing import Optional

from ..datasets.transforms.multi_resolution import _is_resize, _normalize_scale


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
