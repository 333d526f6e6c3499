"""Pointing a test-style pipeline at one view (input size, frames).

One rule, in a built pipeline (:func:`set_pipeline_view`) and in a config's
pipeline list (:func:`set_pipeline_view_cfg`): ``scale`` goes to the LAST
``*Resize`` (for detection the test ``Resize(keep_ratio=True)``; for video a
final ``Resize(keep_ratio=False)`` after the crop), ``frames`` to the frame axis
of ``SampleFrames`` (:func:`frame_axis`), whose spacing grows so the sampled
frames span the same time.
"""
import weakref
from typing import Optional

from .transforms.multi_resolution import (_is_resize, _normalize_scale, _type_name,
                                         frame_axis)
from .wrappers import pipeline_holder

# the span (clip_len * frame_interval) a built SampleFrames had before its first
# change, so successive views keep the stock span
_STOCK_SPAN = weakref.WeakKeyDictionary()


def _transforms(dataset) -> list:
    return getattr(pipeline_holder(dataset).pipeline, 'transforms', [])


def set_pipeline_view(dataset, scale=None, frames: Optional[int] = None) -> None:
    """Make ``dataset``'s pipeline produce inputs at ``scale`` (and ``frames``)."""
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
        if frame_axis(_STOCK_SPAN.get(sampler, (sampler.clip_len, ))[0]) == 'num_clips':
            _STOCK_SPAN.setdefault(sampler, (1, ))
            sampler.num_clips = int(frames)
            return
        stock = _STOCK_SPAN.setdefault(sampler, (sampler.clip_len, sampler.frame_interval))
        sampler.clip_len = int(frames)
        sampler.frame_interval = max(1, round(stock[0] * stock[1] / int(frames)))


def set_pipeline_view_cfg(pipeline: list, scale=None, frames: Optional[int] = None) -> list:
    """The config-dict twin of :func:`set_pipeline_view`, for writing a config
    whose pipeline is at one view (``tools/export_subnet.py``)."""
    if scale is not None:
        resizes = [t for t in pipeline if _is_resize(t)]
        if not resizes:
            raise ValueError(f'the pipeline has no Resize to set the scale {scale!r} on')
        resizes[-1]['scale'] = _normalize_scale(scale)
        resizes[-1].setdefault('keep_ratio', False)
    if frames is not None:
        for t in pipeline:
            if _type_name(t).split('.')[-1] != 'SampleFrames':
                continue
            if frame_axis(t.get('clip_len', 1)) == 'num_clips':
                t['num_clips'] = int(frames)
                continue
            span = t.get('clip_len', 1) * t.get('frame_interval', 1)
            t['clip_len'] = int(frames)
            t['frame_interval'] = max(1, round(span / int(frames)))
    return pipeline
