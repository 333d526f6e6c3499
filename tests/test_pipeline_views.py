"""One rule for putting a pipeline at a view, for a built data set and for a data
set's config alike: the config an exported subnet is written with must give the
pipeline the built data set had when its table row was measured."""
import copy
from types import SimpleNamespace

import pytest
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

import mutual_mm  # noqa: F401
from mutual_mm.datasets.pipeline_reading import find_multi_resolution
from mutual_mm.datasets.pipeline_views import set_pipeline_view

from .helpers import needs

VIDEO_PIPELINE = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=8, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='CenterCrop', crop_size=56),
    dict(type='Resize', scale=(56, 56), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
SAMPLING = ('clip_len', 'frame_interval', 'num_clips')


def described(transforms):
    """What the rule may change, built or config: every SampleFrames' sampling
    and the last Resize's scale."""
    def get(t, name):
        return t[name] if isinstance(t, dict) else getattr(t, name)

    def kind(t):
        return t['type'] if isinstance(t, dict) else type(t).__name__

    sampling = [tuple(get(t, f) for f in SAMPLING) for t in transforms
                if kind(t) == 'SampleFrames']
    return sampling, tuple(get([t for t in transforms if kind(t) == 'Resize'][-1], 'scale'))


@needs('mmaction')
def test_a_config_and_a_built_pipeline_take_the_same_views():
    """Successive views keep the stock sampler's span in both (the config twin
    used to recompute it from the previous view), and only the LAST SampleFrames
    changes in both (the config twin used to change every one)."""
    pipeline = VIDEO_PIPELINE[:1] + [dict(VIDEO_PIPELINE[1], clip_len=4)] + VIDEO_PIPELINE[1:]
    config = dict(type='VideoDataset', pipeline=copy.deepcopy(pipeline))
    with DefaultScope.overwrite_default_scope('mmaction'):
        built = SimpleNamespace(pipeline=Compose(copy.deepcopy(pipeline)))
    for scale, frames in [(32, 3), (40, 8), (48, 5)]:
        set_pipeline_view(config, scale, frames)
        set_pipeline_view(built, scale, frames)
        assert described(config['pipeline']) == described(built.pipeline.transforms)
    sampler = config['pipeline'][2]
    assert (sampler['clip_len'], sampler['frame_interval']) == (5, 13)  # round(64 / 5)
    assert config['pipeline'][1]['clip_len'] == 4  # not the last SampleFrames: unchanged
    assert config['pipeline'][-3]['scale'] == (48, 48)


@pytest.mark.parametrize('wrapped', [False, True])
def test_multi_resolution_is_found_in_configs_and_built_data_sets(wrapped):
    from mmengine.registry import TRANSFORMS
    transform = dict(type='MultiResolution', scales=[64, 48],
                     transforms=[dict(type='Resize', keep_ratio=False)])
    config = dict(type='X', pipeline=[dict(type='LoadImageFromFile'), transform])
    built = SimpleNamespace(pipeline=Compose([TRANSFORMS.build(transform)]), dataset=None,
                            datasets=None)
    if wrapped:
        config = dict(type='RepeatDataset', times=2, dataset=config)
        built = SimpleNamespace(pipeline=None, dataset=built)
    assert find_multi_resolution(config) is transform if not wrapped else \
        find_multi_resolution(config) == transform
    assert type(find_multi_resolution(built)).__name__ == 'MultiResolution'
    assert find_multi_resolution(dict(pipeline=[])) is None


def test_a_pipeline_without_resize_is_refused_by_name():
    with pytest.raises(ValueError, match=r"no Resize to set the scale 32 on; its "
                                         r"transforms: \['LoadImageFromFile'\]"):
        set_pipeline_view(dict(pipeline=[dict(type='LoadImageFromFile')]), 32)
