# The demo: the provided MutualNet Mask R-CNN config, shrunk to train on a 2-core
# CPU in minutes (tools/make_demo_data.py makes the data). Only sizes, data and
# schedule change: a ResNet-18 with 16 base channels, 128x96 images at
# 128x{96, 77, 58, 38} (the 1000x{600, 480, 360, 240} ratios), and a wider
# width range than R-50's [0.7, 1.0] so the table spans a large FLOPs range.
_base_ = '../mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py'

data_root = 'data/mutual_demo/shapes/'
classes = ('rectangle', 'ellipse', 'triangle')
scales = [(128, 96), (128, 77), (128, 58), (128, 38)]
channels = 64  # FPN and heads

model = dict(
    backbone=dict(depth=18, base_channels=16, stem_channels=16, frozen_stages=-1,
                  init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels,
                  anchor_generator=dict(scales=[4])),  # 16-256 px anchors
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels,
                                roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=channels, fc_out_channels=256,
                       num_classes=len(classes)),
        # 7x7 mask RoIs -> 14x14 masks (stock: 14 -> 28), for objects of 8-64 px
        mask_roi_extractor=dict(out_channels=channels,
                                roi_layer=dict(output_size=7, sampling_ratio=2)),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, roi_feat_size=7,
                       num_classes=len(classes))),
    # fewer proposals and sampled RoIs, fixed RoIAlign sampling: a few shapes
    # per image, and mmcv's CPU RoIAlign backward dominates the step otherwise
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=64), mask_size=14)),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiResolution', scales=scales,
         transforms=[dict(type='Resize', keep_ratio=True), dict(type='PackDetInputs')]),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scales[0], keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset = dict(type='CocoDataset', data_root=data_root, metainfo=dict(classes=classes),
               data_prefix=dict(img=''))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(dataset, ann_file='train/annotations.json', data_prefix=dict(img='train/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(dataset, ann_file='val/annotations.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'val/annotations.json')
test_evaluator = val_evaluator

# 480 iterations, one random width per iteration (the paper's n=1, its Fig. 14:
# "even one sub-network can achieve respectable results"): the demo's whole run
# must stay within 15 minutes on the slower 2-core machine kind (AMD EPYC). At 480
# iterations, bbox mAP / s per iteration: n=2 0.734 / 1.02, n=1 0.706 / 0.67, n=2
# with 32 sampled RoIs 0.675 (benchmarks/results/demo_detection_budget_cpu.json)
max_iters = 480
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
# AdamW instead of the provided SGD (lr 0.02): trained from scratch (no ImageNet
# weights offline), SGD reached bbox mAP 0.54 / 0.41 by iteration 600 (seeds 0 / 1),
# AdamW 0.83 / 0.81 (one thread; benchmarks/demo_recipe.py and
# ab_batch_views_demo.py, results in benchmarks/results/)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-4),
]
# SafeCheckpointHook: a full disk leaves the previous checkpoint to resume from
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(type='SafeCheckpointHook', by_epoch=False,
                                     interval=max_iters))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
randomness = dict(seed=0)  # the README's numbers are this run's

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.25, 1.0), num_random=1, distill='gt'),
    dict(type='CalibratedSubnetHook'),
]
