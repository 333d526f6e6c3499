"""MultiResolution emits views equal to what the host pipeline makes at each scale."""
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose, default_collate, pseudo_collate
from mmengine.registry import init_default_scope

import mutual_mm  # noqa: F401
from mutual_mm.datasets import uniform_frame_indices
from tools.data_generators.shapes_and_motion import make_coco_shapes, make_motion_videos
from mutual_mm.engine import split_views


@pytest.fixture(scope='module')
def coco_sample(tmp_path_factory):
    import mmdet.datasets  # noqa: F401  (registers CocoDataset and transforms)
    init_default_scope('mmdet')
    root = tmp_path_factory.mktemp('coco')
    ann = make_coco_shapes(str(root), num_images=2, size=(200, 150), seed=3)
    from mmdet.datasets import CocoDataset
    dataset = CocoDataset(data_root=str(root), ann_file=ann, data_prefix=dict(img=''),
                          metainfo=dict(classes=('rectangle', 'ellipse', 'triangle')),
                          pipeline=[], serialize_data=False)
    return dataset[0]


def test_detection_views_equal_the_stock_pipeline_at_each_scale(coco_sample):
    init_default_scope('mmdet')
    load = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]
    scales = [(200, 120), (200, 90), (160, 60)]
    multi = Compose(load + [dict(type='MultiResolution', scales=scales, transforms=[
        dict(type='Resize', keep_ratio=True), dict(type='PackDetInputs')])])
    views = multi(dict(coco_sample))
    assert len(views['inputs']) == 3
    for k, scale in enumerate(scales):
        stock = Compose(load + [dict(type='Resize', scale=scale, keep_ratio=True),
                                dict(type='PackDetInputs')])(dict(coco_sample))
        view = views['data_samples'][k]
        assert torch.equal(views['inputs'][k], stock['inputs'])
        assert view.img_shape == stock['data_samples'].img_shape
        assert view.scale_factor == stock['data_samples'].scale_factor
        torch.testing.assert_close(view.gt_instances.bboxes.tensor,
                                   stock['data_samples'].gt_instances.bboxes.tensor)
        assert np.array_equal(view.gt_instances.masks.to_ndarray(),
                              stock['data_samples'].gt_instances.masks.to_ndarray())
    assert views['inputs'][0].shape[1:] == (120, 160)  # 150x200 into 200x120
    assert views['inputs'][2].shape[1:] == (60, 80)


def test_frames_are_spread_over_the_same_span():
    assert uniform_frame_indices(8, 8).tolist() == list(range(8))
    assert uniform_frame_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert uniform_frame_indices(8, 3).tolist() == [1, 4, 6]
    idx = uniform_frame_indices(16, 6)
    assert idx[0] < 16 / 6 and idx[-1] >= 16 - 16 / 6  # first and last segments


@pytest.fixture(scope='module')
def video_views(tmp_path_factory):
    import mmaction.datasets  # noqa: F401
    init_default_scope('mmaction')
    root = tmp_path_factory.mktemp('videos')
    make_motion_videos(str(root), num_videos=2, size=(64, 48), num_frames=16)
    pipeline = Compose([
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1,
             test_mode=True),
        dict(type='DecordDecode'),
        dict(type='MultiResolution', scales=[48, 32], frames=[8, 3], transforms=[
            dict(type='Resize', keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs')]),
    ])
    return [pipeline(dict(filename=str(root / f'videos/0000{i}.mp4'), label=i,
                          start_index=0, modality='RGB')) for i in range(2)]


def test_video_views_cover_sizes_and_frame_counts(video_views):
    shapes = [tuple(v.shape) for v in video_views[0]['inputs']]
    assert shapes == [(1, 3, 8, 48, 48), (1, 3, 3, 48, 48), (1, 3, 8, 32, 32),
                      (1, 3, 3, 32, 32)]
    full, short = video_views[0]['inputs'][0], video_views[0]['inputs'][1]
    assert torch.equal(short, full[:, :, uniform_frame_indices(8, 3)])


@pytest.mark.parametrize('collate', [pseudo_collate, default_collate])
def test_each_view_batch_is_the_plain_batch_of_that_view(video_views, collate):
    """Collating views then splitting them gives, per view, exactly what the
    same collate function makes of a plain (single-view) batch."""
    batches = split_views(collate(video_views), 4)
    assert len(batches) == 4
    for k, batch in enumerate(batches):
        plain = collate([{key: sample[key][k] for key in sample} for sample in video_views])
        if isinstance(plain['inputs'], torch.Tensor):  # default_collate stacks
            assert torch.equal(batch['inputs'], plain['inputs'])
        else:
            assert all(torch.equal(a, b) for a, b in zip(batch['inputs'], plain['inputs']))
            assert type(batch['inputs']) is type(plain['inputs'])
        assert [s.gt_label.item() for s in batch['data_samples']] == [0, 1]


def test_view_batches_feed_the_stock_preprocessor(video_views):
    from mmaction.models import ActionDataPreprocessor
    preprocessor = ActionDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1],
                                          format_shape='NCTHW')
    for k, batch in enumerate(split_views(pseudo_collate(video_views), 4)):
        out = preprocessor(batch, training=True)
        expected = tuple(video_views[0]['inputs'][k].shape)
        assert tuple(out['inputs'].shape) == (2, ) + expected


def test_placed_before_the_loading_transforms_it_says_where_it_belongs(coco_sample, tmp_path):
    init_default_scope('mmdet')
    tail = [dict(type='Resize', keep_ratio=True), dict(type='PackDetInputs')]
    early = Compose([dict(type='MultiResolution', scales=[(200, 120)], transforms=tail),
                     dict(type='LoadImageFromFile')])
    with pytest.raises(ValueError, match=r'no loaded image or frames \(keys: .*'
                       r'MultiResolution goes after .*LoadImageFromFile, LoadAnnotations'):
        early(dict(coco_sample))

    import mmaction.datasets  # noqa: F401
    init_default_scope('mmaction')
    make_motion_videos(str(tmp_path), num_videos=1, size=(64, 48), num_frames=16)
    video_tail = [dict(type='Resize', keep_ratio=False),
                  dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    sample = dict(filename=str(tmp_path / 'videos/00000.mp4'), label=0, start_index=0,
                  modality='RGB')
    before_decode = Compose([
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
        dict(type='MultiResolution', scales=[48], frames=[8, 4], transforms=video_tail),
        dict(type='DecordDecode')])
    with pytest.raises(ValueError, match=r'no loaded image or frames.*DecordInit, '
                       r'SampleFrames, DecordDecode'):
        before_decode(dict(sample))
