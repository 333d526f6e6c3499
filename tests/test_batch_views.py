"""Views made from the loaded batch (MutualLearningHook(batch_views=...)): the
pipeline stays the stock single-resolution one and each member's input is made
on the model's device. Per view they equal the pipeline's MultiResolution views:
frames exactly, sizes up to resizing an already resized image (measured below)."""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.engine import split_views
from mutual_mm.hosts import BatchViews, host_of

from .helpers import det_train_cfg, rec_train_cfg
from .test_classifier import _hooked_mbv1_cfg

SCALES, FRAMES = (48, 40, 32), (4, 3, 2)


def _stock_pipeline(cfg):
    """The train pipeline with MultiResolution replaced by its full view."""
    pipeline = cfg.train_dataloader.dataset.pipeline
    multi = pipeline.pop()
    tail = copy.deepcopy(multi['transforms'])
    tail[0]['scale'] = (multi['scales'][0], ) * 2
    pipeline.extend(tail)
    return cfg


def test_batch_views_equal_the_pipeline_views(tmp_path):
    runner = Runner.from_cfg(rec_train_cfg(tmp_path / 'w', tmp_path / 'd', SCALES, FRAMES))
    dataset = runner.train_dataloader.dataset
    multi = [t for t in dataset.pipeline.transforms
             if type(t).__name__ == 'MultiResolution'][0]
    model = runner.model
    views = split_views(pseudo_collate([dataset[0], dataset[1]]), len(multi.views))
    batch_views = BatchViews(host_of(model), SCALES, FRAMES)
    assert batch_views.views == multi.views
    full = model.data_preprocessor(views[0], True)
    for index, (scale, frames) in enumerate(multi.views):
        pipeline = model.data_preprocessor(views[index], True)['inputs']
        made = batch_views.make(full, index)['inputs']
        assert made.shape == pipeline.shape == (2, 1, 3, frames, scale, scale)
        diff = (made - pipeline).abs()
        if scale == SCALES[0]:  # frames only: the same frames exactly
            assert torch.equal(made, pipeline)
        else:  # measured: mean 0.006 (std of the inputs 0.8), 1.3 % of values > 0.1
            assert diff.mean() < 0.01 and (diff > 0.1).float().mean() < 0.02, index


def test_a_stock_pipeline_trains_with_batch_views(tmp_path):
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2,
                batch_views=dict(scales=list(SCALES), frames=list(FRAMES)))
    cfg = _stock_pipeline(rec_train_cfg(tmp_path / 'w', tmp_path / 'd', SCALES, FRAMES,
                                        hook=hook, max_iters=3))
    runner = Runner.from_cfg(cfg)
    calls = []
    runner.model.data_preprocessor.register_forward_hook(lambda *a: calls.append(1))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert scalars['train/full.res'].current() == 48
    assert scalars['train/full.frames'].current() == 4
    assert {scalars[f'train/{m}.res'].current() for m in ('min', 'rand0', 'rand1')} <= \
        set(SCALES)
    assert len(calls) == 3  # one preprocessing per iteration, not one per member
    hook_obj = [h for h in runner.hooks if type(h).__name__ == 'MutualLearningHook'][0]
    assert hook_obj.trained_space().scales == list(SCALES)
    # the deploy tools read the trained sizes from the hook's batch_views
    from mutual_mm.deploy import trained_subnets
    assert [(c.scale, c.frames) for c in trained_subnets(cfg, widths=[1.0])] == \
        [(s, f) for s in SCALES for f in FRAMES]


def test_image_classifier_trains_with_batch_views(tmp_path):
    cfg = _hooked_mbv1_cfg(tmp_path)
    pipeline = cfg.train_dataloader.dataset.pipeline
    multi = pipeline.pop()
    scales = multi['scales']
    tail = copy.deepcopy(multi['transforms'])
    for t in tail:
        if 'Resize' in t['type'] or 'Crop' in t['type']:
            t.setdefault('scale', scales[0])
    pipeline.extend(tail)
    cfg.custom_hooks[0]['batch_views'] = dict(scales=scales)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.message_hub.log_scalars['train/full.res'].current() == scales[0]


@pytest.mark.parametrize('case, match', [
    ('multi_resolution_too', 'remove MultiResolution'),
    ('bad_key', 'valid: dict'),
    ('detector_frames', r'MaskRCNN: images have no frames.*got \[4, 2\]'),
])
def test_batch_views_refusals(tmp_path, case, match):
    views = dict(scales=list(SCALES), frames=list(FRAMES))
    if case == 'bad_key':
        with pytest.raises(ValueError, match=match):
            mutual_mm.engine.MutualLearningHook(batch_views=dict(sizes=[48]))
        return
    if case == 'detector_frames':
        hook = dict(type='MutualLearningHook',
                    batch_views=dict(scales=[(160, 96)], frames=[4, 2]))
        cfg = det_train_cfg(tmp_path / 'w', tmp_path / 'd', hook=hook)
        pipeline = cfg.train_dataloader.dataset.pipeline
        multi = pipeline.pop()
        pipeline.extend([dict(type='Resize', scale=(160, 96), keep_ratio=True),
                         multi['transforms'][-1]])
        with pytest.raises(ValueError, match=match):
            Runner.from_cfg(cfg).train()
        return
    hook = dict(type='MutualLearningHook', batch_views=views)
    cfg = rec_train_cfg(tmp_path / 'w', tmp_path / 'd', SCALES, FRAMES, hook=hook)
    with pytest.raises(ValueError, match=match):
        Runner.from_cfg(cfg).train()


def test_a_first_view_the_pipeline_does_not_deliver_is_refused(tmp_path):
    # the stock pipeline delivers 48 px x 4 frames; the hook is told 40 px comes first
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=1,
                batch_views=dict(scales=[40, 32], frames=list(FRAMES)))
    cfg = _stock_pipeline(rec_train_cfg(tmp_path / 'w', tmp_path / 'd', SCALES, FRAMES,
                                        hook=hook, max_iters=2))
    with pytest.raises(ValueError, match=(
            r"the first view \(scale 40, frames 4\) is the full network's and must be "
            r'what the train pipeline delivers, but the loaded batch has inputs '
            r'\(1, 3, 4, 48, 48\) where that view has inputs \(1, 3, 4, 40, 40\)')):
        Runner.from_cfg(cfg).train()


def test_tsn_views_take_segments():
    """2D recognizers fold segments into the batch: a view's frames are segments."""
    from mutual_mm.hosts import Recognizer2DHost
    inputs = torch.arange(3.0).reshape(1, 3, 1, 1, 1).expand(2, 3, 3, 48, 48)
    made = Recognizer2DHost.batch_view(Recognizer2DHost.__new__(Recognizer2DHost),
                                       dict(inputs=inputs), 32, 2)['inputs']
    assert made.shape == (2, 2, 3, 32, 32)
    assert made[0, :, 0, 0, 0].tolist() == [0.0, 2.0]  # first and last segment
