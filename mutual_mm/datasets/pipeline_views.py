"""Pointing a test-style pipeline at one view (input size, frames).

One rule, for a built pipeline and for a config's pipeline list alike
(:func:`set_pipeline_view`): ``scale`` goes to the LAST ``*Resize`` (for detection
the test ``Resize(keep_ratio=True)``; for video a final ``Resize(keep_ratio=False)``
after the crop), ``frames`` to the frame axis of the LAST ``SampleFrames``
(:func:`frame_axis`), whose spacing grows so the sampled frames span what the
stock sampler spanned, however many views were set before.
"""
from typing import Optional

from ..scale import scale_pair
from .transforms.multi_resolution import _is_resize, _type_name, frame_axis
from .wrappers import field, pipeline_holder, set_field

# (the transform, its stock (clip_len, frame_interval)) by id: a sampler's span
# before its first change, so successive views keep the stock span. Keyed by id
# and holding the transform, because config dicts cannot be weak-referenced.
_STOCK_SAMPLING = {}


def _stock_sampling(sampler) -> tuple:
    kept = _STOCK_SAMPLING.get(id(sampler))
    if kept is None or kept[0] is not sampler:
        kept = _STOCK_SAMPLING[id(sampler)] = (
            sampler, (int(field(sampler, 'clip_len', 1)), int(field(sampler, 'frame_interval', 1))))
    return kept[1]


def pipeline_transforms(dataset) -> list:
    """The transforms of ``dataset``'s pipeline (wrappers unwrapped): the built
    ``Compose``'s list, or a dataset config's pipeline list."""
    pipeline = field(pipeline_holder(dataset), 'pipeline')
    return pipeline if isinstance(pipeline, list) else getattr(pipeline, 'transforms', [])


def set_pipeline_view(dataset, scale=None, frames: Optional[int] = None) -> None:
    """Make ``dataset``'s pipeline produce inputs at ``scale`` (and ``frames``):
    a built data set, or a data set's config dict (what an exported subnet's
    config is written from)."""
    transforms = pipeline_transforms(dataset)
    if scale is not None:
        resizes = [t for t in transforms if _is_resize(t)]
        if not resizes:
            raise ValueError(f'the pipeline has no Resize to set the scale {scale!r} on; '
                             f'its transforms: {[_type_name(t) for t in transforms]}')
        set_field(resizes[-1], 'scale', scale_pair(scale, 'set_pipeline_view'))
    if frames is not None:
        samplers = [t for t in transforms if _type_name(t).split('.')[-1] == 'SampleFrames']
        if not samplers:
            raise ValueError(f'the pipeline has no SampleFrames to set frames={frames} on')
        clip_len, interval = _stock_sampling(samplers[-1])
        if frame_axis(clip_len) == 'num_clips':
            set_field(samplers[-1], 'num_clips', int(frames))
            return
        set_field(samplers[-1], 'clip_len', int(frames))
        set_field(samplers[-1], 'frame_interval', max(1, round(clip_len * interval / int(frames))))
