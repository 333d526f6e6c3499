"""Inputs for the stock models, shaped as the host libraries' pipelines pack them."""
import gzip
import os.path as osp

import numpy as np

import pytest
import torch
from mmengine.structures import InstanceData

from mutual_mm.extras import available


def needs(extra):
    """Skip a test of the core's files where the optional host library ``extra``
    does not import (how tests/test_core_only.py runs them)."""
    return pytest.mark.skipif(not available(extra), reason=f'needs {extra}')


def det_packed_inputs(height=128, width=160, num_boxes=2, num_classes=80):
    """One image with boxes and masks, as mmdet's PackDetInputs emits it."""
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=1, image_shapes=[(3, height, width)],
                          num_items=[num_boxes], num_classes=num_classes,
                          with_mask=True)


def action_packed_inputs(frames, size=64, label=3, batch_size=1, seed=0):
    """Clips as mmaction's FormatShape('NCTHW') + PackActionInputs emit them."""
    from mmaction.structures import ActionDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (1, 3, frames, size, size), generator=g,
                            dtype=torch.uint8) for _ in range(batch_size)]
    samples = [ActionDataSample().set_gt_label(label) for _ in range(batch_size)]
    return dict(inputs=inputs, data_samples=samples)


def ava_packed_inputs(frames=4, size=64, num_classes=81):
    """One AVA clip with a person proposal and its multi-label ground truth."""
    from mmaction.structures import ActionDataSample
    g = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (1, 3, frames, size, size), generator=g,
                         dtype=torch.uint8)
    boxes = torch.tensor([[4.0, 6.0, 40.0, 60.0], [20.0, 10.0, 60.0, 50.0]])
    labels = torch.zeros(2, num_classes)
    labels[0, 5] = labels[1, 12] = labels[1, 30] = 1
    sample = ActionDataSample(metainfo=dict(img_shape=(size, size)))
    sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
    sample.proposals = InstanceData(bboxes=boxes.clone())
    return dict(inputs=[clip[0]], data_samples=[sample])


def loss_of(model, packed):
    """The training forward of a host model: preprocess, then mode='loss'."""
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)  # mmengine's own reduction
    return losses, total


# ------------------------------------------------------------ runner configs
DET_SCALES = [(160, 96), (160, 80), (160, 64)]


def det_train_cfg(work_dir, data_root, scales=DET_SCALES, hook=None, max_iters=2,
                  seed=0, val=False):
    """The stock Mask R-CNN R50-FPN config, backbone swapped to SlimResNet, the
    MultiResolution transform and (optionally) the hook added, on a small
    generated COCO set; iteration-based, tiny sizes."""
    from tools.data_generators.shapes_and_motion import SHAPE_CLASSES, make_coco_shapes
    from mutual_mm.utils import load_config
    cfg = load_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    ann = make_coco_shapes(str(data_root), num_images=4, size=(160, 120), seed=seed)
    cfg.model.backbone.type = 'SlimResNet'
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = len(SHAPE_CLASSES)
    cfg.model.roi_head.mask_head.num_classes = len(SHAPE_CLASSES)
    tail = [dict(type='Resize', keep_ratio=True), dict(type='PackDetInputs')]
    cfg.train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='MultiResolution', scales=list(scales), transforms=tail),
    ]
    dataset = dict(type='CocoDataset', data_root=str(data_root), ann_file=ann,
                   data_prefix=dict(img=''), metainfo=dict(classes=SHAPE_CLASSES),
                   filter_cfg=dict(filter_empty_gt=True), pipeline=cfg.train_pipeline)
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_sampler=dict(type='AspectRatioBatchSampler'), dataset=dataset)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                            weight_decay=1e-4))
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max_iters,
                                        by_epoch=False)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.custom_hooks = [hook] if hook else []
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = str(work_dir)
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer = dict(type='DetLocalVisualizer', vis_backends=[])
    return cfg


SLOWONLY = 'mmaction::recognition/slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py'


def rec_train_cfg(work_dir, data_root, scales=(48, 40, 32), frames=(4, 3, 2), hook=None,
                  max_iters=2, seed=0, checkpoint_interval=None, batch_size=2,
                  with_test=False):
    """The stock SlowOnly R50 Kinetics config, backbone swapped to
    SlimResNet3dSlowOnly, MultiResolution (spatial x temporal) and (optionally)
    the hook added, on small generated mp4 clips; no dropout (deterministic)."""
    from tools.data_generators.shapes_and_motion import MOTION_CLASSES, make_motion_videos
    from mutual_mm.utils import load_config
    cfg = load_config(SLOWONLY)
    ann = make_motion_videos(str(data_root), num_videos=4, size=(64, 48),
                             num_frames=16, seed=seed)
    cfg.model.backbone.type = 'SlimResNet3dSlowOnly'
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.num_classes = len(MOTION_CLASSES)
    cfg.model.cls_head.dropout_ratio = 0
    tail = [dict(type='Resize', keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs')]
    pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=frames[0], frame_interval=2, num_clips=1),
        dict(type='DecordDecode'),
        dict(type='MultiResolution', scales=list(scales), frames=list(frames),
             transforms=tail),
    ]
    cfg.train_dataloader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type='VideoDataset', ann_file=ann,
                     data_prefix=dict(video=str(data_root)), pipeline=pipeline))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False,
        interval=checkpoint_interval or max_iters)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    if with_test:  # the test pipeline ends with the size a subnet sets
        test_pipeline = [
            dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=frames[0], frame_interval=2,
                 num_clips=1, test_mode=True),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(scales[0], scales[0]), keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs')]
        cfg.test_dataloader = dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='VideoDataset', ann_file=ann, test_mode=True,
                         data_prefix=dict(video=str(data_root)), pipeline=test_pipeline))
        cfg.test_evaluator = dict(type='AccMetric')
        cfg.test_cfg = dict(type='TestLoop')
    cfg.custom_hooks = [hook] if hook else []
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = str(work_dir)
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer = dict(type='ActionVisualizer', vis_backends=[])
    return cfg


# ------------------------------------------- provided configs on small data
def shrink_pipeline(pipeline, size):
    """The same pipeline at a tiny ``size``: every size-setting argument scaled
    down, transforms and their order unchanged; test clips cut to one."""
    for t in pipeline:
        kind = t['type']
        if kind == 'Resize' and t.get('scale') is not None:
            w, h = t['scale']
            t['scale'] = ((-1, size + size // 8) if w == -1
                          else (size, size) if w == h else (size * 5 // 3, size))
        elif kind == 'RandomRescale':
            t['scale_range'] = (size + size // 8, size + size // 4)
        elif kind == 'RandomCrop':
            t['size'] = size
        elif kind in ('CenterCrop', 'ThreeCrop', 'TenCrop'):
            t['crop_size'] = size
        elif kind == 'SampleFrames' and t.get('test_mode'):
            t['num_clips'] = 1
        elif kind == 'MultiResolution':
            first = t['scales'][0]
            if isinstance(first, int):
                t['scales'] = [max(16, s * size // first) for s in t['scales']]
            else:  # (w, h): scale by the height
                t['scales'] = [(size * 5 // 3, max(16, h * size // first[1]))
                               for _, h in t['scales']]
    return pipeline


def _small_loader(loader, pipeline_size, **dataset):
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.dataset.update(dataset)
    shrink_pipeline(loader.dataset.pipeline, pipeline_size)
    return loader


def on_small_data(cfg, work_dir, data_root, task, max_iters=2):
    """A provided config, unchanged but for its data (generated in ``task``'s real
    format under ``data_root``), its sizes and its schedule (``max_iters``
    iterations; validation after them with the config's own metric)."""
    from tools.data_generators.shapes_and_motion import (MOTION_CLASSES, SHAPE_CLASSES,
                                              make_coco_shapes, make_motion_videos)
    data_root = str(data_root)
    if task == 'coco':
        train = make_coco_shapes(osp.join(data_root, 'train'), num_images=4, seed=0)
        val = make_coco_shapes(osp.join(data_root, 'val'), num_images=2, seed=1)
        for key, ann in (('train_dataloader', train), ('val_dataloader', val)):
            _small_loader(cfg[key], 96, data_root=osp.dirname(ann), ann_file=ann,
                          data_prefix=dict(img=''), metainfo=dict(classes=SHAPE_CLASSES))
        cfg.val_evaluator.ann_file = val
        cfg.model.roi_head.bbox_head.num_classes = len(SHAPE_CLASSES)
        cfg.model.roi_head.mask_head.num_classes = len(SHAPE_CLASSES)
        cfg.model.backbone.init_cfg = None
        cfg.visualizer = dict(type='DetLocalVisualizer', vis_backends=[])
    else:
        train = make_motion_videos(osp.join(data_root, 'train'), num_videos=4, seed=0)
        val = make_motion_videos(osp.join(data_root, 'val'), num_videos=2, seed=1)
        for key, ann in (('train_dataloader', train), ('val_dataloader', val)):
            _small_loader(cfg[key], 48, ann_file=ann,
                          data_prefix=dict(video=osp.dirname(ann)))
        cfg.model.cls_head.num_classes = len(MOTION_CLASSES)
        cfg.model.backbone.pop('pretrained', None)
        cfg.visualizer = dict(type='ActionVisualizer', vis_backends=[])
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.load_from = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=max_iters)
    cfg.param_scheduler = []
    # from random init a 2-image batch diverges at the 8-GPU learning rates
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max_iters,
                                        by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_fashion_mnist(root, num_train=96, num_test=40, seed=0):
    """MNIST-format idx files whose class is a bright horizontal band's position."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (('train', num_train), ('t10k', num_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for img, label in zip(images, labels):
            img[2 + 2 * label: 4 + 2 * label] = 250
        write_idx(root / f'{prefix}-images-idx3-ubyte.gz', images)
        write_idx(root / f'{prefix}-labels-idx1-ubyte.gz', labels)
    return root


def randomize_bn(model, seed=0):
    """Non-trivial BN running statistics and affine terms, so that eval-mode
    equality between two networks means something."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model
