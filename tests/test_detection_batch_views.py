"""Detection views made from the loaded batch (MutualLearningHook(batch_views=...)
on a detector): per view they equal what MultiResolution's pipeline views give
(metainfo exactly, boxes to float precision, polygons exactly), up to resizing
an already resized image (pixels and bitmap masks, measured below); the RPN and
mask targets built from them follow."""
import copy
import math
import re

import numpy as np
import pytest
import torch
from mmdet.models.task_modules.samplers import PseudoSampler
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mutual_mm  # noqa: F401
from tools.data_generators.shapes_and_motion import make_coco_shapes
from mutual_mm.engine import split_views
from mutual_mm.hosts import BatchViews, host_of
from mutual_mm.utils import load_config

from .helpers import DET_SCALES, det_train_cfg

META_KEYS = ('img_shape', 'scale_factor', 'pad_shape', 'batch_input_shape')


@pytest.fixture(scope='module')
def det(tmp_path_factory):
    """The stock Mask R-CNN (SlimResNet) and its MultiResolution train datasets:
    landscape 160x120 and portrait 100x150 images (different img_shapes and
    pad_shapes in one batch), bitmap and polygon masks."""
    from mmdet.registry import DATASETS
    tmp = tmp_path_factory.mktemp('det_views')
    cfg = det_train_cfg(tmp / 'w', tmp / 'd')
    runner = Runner.from_cfg(cfg)
    portrait = make_coco_shapes(str(tmp / 'd2'), num_images=2, size=(100, 150), seed=1)
    datasets = {}
    for kind in ('bitmap', 'polygon'):
        parts = []
        for root, ann in ((cfg.train_dataloader.dataset.data_root,
                           cfg.train_dataloader.dataset.ann_file),
                          (str(tmp / 'd2'), portrait)):
            dcfg = copy.deepcopy(cfg.train_dataloader.dataset)
            dcfg.update(data_root=root, ann_file=ann)
            dcfg.pipeline[1]['poly2mask'] = kind == 'bitmap'
            parts.append(DATASETS.build(dcfg))
        datasets[kind] = parts
    return runner.model, datasets


def _views(model, datasets):
    """(full view preprocessed, every pipeline view preprocessed, BatchViews)."""
    landscape, portrait = datasets
    data = pseudo_collate([landscape[0], portrait[0], landscape[1]])
    views = split_views(data, len(DET_SCALES))
    pipeline = [model.data_preprocessor(copy.deepcopy(v), True) for v in views]
    full = model.data_preprocessor(copy.deepcopy(views[0]), True)
    return full, pipeline, BatchViews(host_of(model), DET_SCALES)


@pytest.mark.parametrize('kind', ['bitmap', 'polygon'])
def test_detection_views_equal_the_pipeline_views(det, kind):
    model, datasets = det
    full, pipeline, batch_views = _views(model, datasets[kind])
    before = [(s.img_shape, s.gt_instances.bboxes.clone()) for s in full['data_samples']]
    for index in range(1, len(DET_SCALES)):
        made, want = batch_views.make(full, index), pipeline[index]
        for m, w in zip(made['data_samples'], want['data_samples']):
            for key in META_KEYS:
                assert m.metainfo[key] == w.metainfo[key], (index, key)
            assert torch.equal(m.gt_instances.labels, w.gt_instances.labels)
            # measured: 1.5e-5 px at most
            assert (m.gt_instances.bboxes - w.gt_instances.bboxes).abs().max() < 1e-3
            mm, wm = m.gt_instances.masks, w.gt_instances.masks
            assert type(mm) is type(wm) and (mm.height, mm.width) == (wm.height, wm.width)
            if kind == 'bitmap':
                # measured: at most 0.30 % of the pixels (4 % of the foreground:
                # the boundary of 20-40 px shapes) differ from the pipeline's
                # nearest-neighbour resize of the original mask
                wrong = mm.masks != wm.masks
                assert wrong.mean() < 0.006, index
                assert wrong.sum() <= 0.08 * max(1, wm.masks.sum()), index
            else:  # measured: 7e-15 px
                for pm, pw in zip(mm.masks, wm.masks):
                    for a, b in zip(pm, pw):
                        np.testing.assert_allclose(a, b, atol=1e-4)
        assert made['inputs'].shape == want['inputs'].shape
        # measured on the noisy generated images (std of the inputs 0.55):
        # mean |diff| 0.018 / 0.022, 3.1 % / 3.9 % of values > 0.1 (views 1 / 2)
        diff = (made['inputs'] - want['inputs']).abs()
        assert diff.mean() < 0.035 and (diff > 0.1).float().mean() < 0.07, index
    # the full member's samples are untouched
    for (shape, boxes), sample in zip(before, full['data_samples']):
        assert sample.img_shape == shape and torch.equal(sample.gt_instances.bboxes, boxes)


def _rpn_targets(rpn_head, batch):
    """Anchor labels, weights and box targets of every anchor (all positives and
    negatives: a PseudoSampler, so no random draw differs between the two)."""
    samples = batch['data_samples']
    metas = [s.metainfo for s in samples]
    height, width = metas[0]['batch_input_shape']
    # FPN levels: stride s gives ceil(size / s) (P6 is a stride-2 max pool)
    sizes = [(math.ceil(height / s), math.ceil(width / s))
             for s, _ in rpn_head.prior_generator.strides]
    anchors, valid = rpn_head.get_anchors(sizes, metas, device='cpu')
    gts = []
    for s in samples:  # RPN is class-agnostic, as TwoStageDetector.loss sets it
        gt = copy.copy(s.gt_instances)
        gt.labels = torch.zeros_like(gt.labels)
        gts.append(gt)
    sampler, rpn_head.sampler = rpn_head.sampler, PseudoSampler()
    try:
        labels, label_w, box_t, box_w, _ = rpn_head.get_targets(anchors, valid, gts, metas)
    finally:
        rpn_head.sampler = sampler
    return [torch.cat([t.flatten(1) if t.dim() > 2 else t for t in level], 1)
            for level in (labels, label_w)] + \
        [torch.cat(level, 1) for level in (box_t, box_w)]


def test_rpn_and_mask_targets_follow(det):
    model, datasets = det
    full, pipeline, batch_views = _views(model, datasets['bitmap'])
    roi = model.roi_head
    for index in range(1, len(DET_SCALES)):
        made, want = batch_views.make(full, index), pipeline[index]
        labels, label_w, box_t, box_w = _rpn_targets(model.rpn_head, made)
        labels_p, label_w_p, box_t_p, box_w_p = _rpn_targets(model.rpn_head, want)
        # measured: identical anchor labels and weights (15-16 positive anchors),
        # box targets 2.4e-7 apart
        assert torch.equal(labels, labels_p) and torch.equal(label_w, label_w_p)
        assert torch.equal(box_w, box_w_p)
        assert (box_t - box_t_p).abs().max() < 1e-4
        assert int((labels == 0).sum()) > 0  # there are positives to compare
        # mask targets of the same positive RoIs (the pipeline view's boxes,
        # shifted), assigned as the RoI head assigns them
        sampling = []
        for m, w in zip(made['data_samples'], want['data_samples']):
            boxes = w.gt_instances.bboxes
            priors = torch.cat([boxes, boxes + boxes.new_tensor([2.0, -1.0, 1.0, 2.0])])
            pred = InstanceData(priors=priors)
            assigned = roi.bbox_assigner.assign(pred, w.gt_instances)
            sampling.append(PseudoSampler().sample(assigned, pred, w.gt_instances))
        cfg = model.train_cfg.rcnn
        targets = roi.mask_head.get_targets(
            sampling, [s.gt_instances for s in made['data_samples']], cfg)
        targets_p = roi.mask_head.get_targets(
            sampling, [s.gt_instances for s in want['data_samples']], cfg)
        # measured: 2.5 % / 1.3 % of the 28x28 mask target pixels differ (views 1 / 2;
        # 73 % of them are foreground)
        assert targets.shape == targets_p.shape and targets.numel() > 0
        assert (targets != targets_p).float().mean() < 0.05, index


def _stock_pipeline(scale):
    """The stock Mask R-CNN train pipeline, its one Resize at ``scale``."""
    cfg = load_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    resize, = [t for t in pipeline if t['type'] == 'Resize']
    resize['scale'] = scale
    return pipeline


def _tiny_sizes(model):
    """Channels, sampled RoIs and RoIAlign sampling shrunk (layers and heads
    unchanged): mmcv's CPU RoIAlign backward on 512 adaptive-sampled RoIs per
    image takes the stock sizes' step to minutes on two cores."""
    model.backbone.update(depth=18, base_channels=16, stem_channels=16)
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=32)
    model.rpn_head.update(in_channels=32, feat_channels=32)
    roi = model.roi_head
    for extractor in (roi.bbox_roi_extractor, roi.mask_roi_extractor):
        extractor.update(out_channels=32)
        extractor.roi_layer.sampling_ratio = 2
    roi.bbox_head.update(in_channels=32, fc_out_channels=64)
    roi.mask_head.update(in_channels=32, conv_out_channels=32)
    model.train_cfg.rpn_proposal.update(nms_pre=300, max_per_img=100)
    model.train_cfg.rcnn.sampler.num = 64


def test_stock_mask_rcnn_trains_with_batch_views(tmp_path):
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2,
                batch_views=dict(scales=list(DET_SCALES)))
    cfg = det_train_cfg(tmp_path / 'w', tmp_path / 'd', hook=hook, max_iters=2)
    cfg.train_dataloader.dataset.pipeline = _stock_pipeline(DET_SCALES[0])
    _tiny_sizes(cfg.model)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    calls, seen = [], []
    model.data_preprocessor.register_forward_hook(lambda *a: calls.append(1))
    model.backbone.register_forward_pre_hook(
        lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs['data_samples'][0].img_shape),
        with_kwargs=True)
    runner.train()
    assert len(calls) == 2  # one preprocessing per iteration, not one per member
    scalars = runner.message_hub.log_scalars
    members = ('full', 'min', 'rand0', 'rand1')
    for m in members:
        assert math.isfinite(scalars[f'train/{m}.loss'].current())
    # the 160x120 images at (160, s) are 4s/3 x s; the batch pads to 32
    last = seen[-2 * len(members):]
    for m, (img_shape, input_shape) in zip(members, zip(last[::2], last[1::2])):
        res = int(scalars[f'train/{m}.res'].current())
        assert img_shape == (res, round(res * 4 / 3)), m
        assert input_shape == (math.ceil(res / 32) * 32, math.ceil(res * 4 / 3 / 32) * 32)
    assert {shape for shape in seen[::2]} <= {(s, round(s * 4 / 3)) for _, s in DET_SCALES}


def test_frames_for_a_detector_are_refused(det):
    model, datasets = det
    full, _, _ = _views(model, datasets['bitmap'])
    with pytest.raises(ValueError, match=r'images have no frames.*got 2'):
        host_of(model).batch_view(full, DET_SCALES[1], 2)
    with pytest.raises(ValueError, match=r'images have no frames.*got \[4, 2\]'):
        BatchViews.of(host_of(model), datasets['bitmap'][0], scales=DET_SCALES, frames=[4, 2])


def test_a_first_view_the_pipeline_does_not_deliver_is_refused(det):
    model, datasets = det
    full, _, _ = _views(model, datasets['bitmap'])  # loaded at DET_SCALES[0]
    first_not_loaded = BatchViews(host_of(model), DET_SCALES[1:])
    with pytest.raises(ValueError, match=(
            rf'first view \(scale {re.escape(str(DET_SCALES[1]))}\).*but the loaded '
            r'batch has inputs .*img_shape .* where that view has')):
        first_not_loaded.make(full, 0)
    # the right first view passes, on a batch of landscape and portrait images
    assert BatchViews(host_of(model), DET_SCALES).make(full, 0) is full
