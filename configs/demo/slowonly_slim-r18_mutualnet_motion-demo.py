# The video demo: the provided MutualNet Slow-8x8 config, shrunk to train on a
# 2-core CPU in minutes (tools/make_demo_data.py makes the data: clips of a
# small square or ring; class: its shape and the direction it moves in). Only
# sizes, data and schedule change: a 3D ResNet-18 with 16 base channels, 48 px
# crops at {48, 38, 30} px x {8, 5, 3} frames (the 224/178/142 x 8/5/3 ratios),
# and a wider width range than [0.63, 1.0] so the table spans a large FLOPs
# range.
_base_ = '../kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py'

data_root = 'data/mutual_demo/motion/'
model = dict(
    backbone=dict(depth=18, base_channels=16, pretrained=None),
    cls_head=dict(in_channels=128, num_classes=8, dropout_ratio=0.2))  # shape x direction

train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=3, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 54)),
    dict(type='RandomCrop', size=48),
    dict(type='MultiResolution', scales=[48, 38, 30], frames=[8, 5, 3],
         transforms=[dict(type='Resize', keep_ratio=False),
                     dict(type='FormatShape', input_format='NCTHW'),
                     dict(type='PackActionInputs')]),
]
# No Flip: a mirrored clip of a square moving left is one moving right.
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=3, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 54)),
    dict(type='CenterCrop', crop_size=48),
    dict(type='Resize', scale=(48, 48), keep_ratio=False),  # the size a subnet sets
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(ann_file=data_root + 'train/videos.txt',
                 data_prefix=dict(video=data_root + 'train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(ann_file=data_root + 'val/videos.txt',
                 data_prefix=dict(video=data_root + 'val'), pipeline=val_pipeline))
test_dataloader = val_dataloader
test_evaluator = dict(type='AccMetric')
test_cfg = dict(type='TestLoop')

max_iters = 500
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
# AdamW instead of SGD (lr 0.1): from scratch, SGD learned the ring's shape by
# iteration 500 with seed 0 (top-1 0.98) but not with seed 1 (0.61, the direction
# only); AdamW reached 0.95 and 0.98 (benchmarks/demo_recipe.py)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=1e-4),
]
# SafeCheckpointHook: a full disk leaves the previous checkpoint to resume from
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(type='SafeCheckpointHook', by_epoch=False,
                                     interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
randomness = dict(seed=0)  # the README's numbers are this run's

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.25, 1.0), num_random=2, distill='kl'),
    dict(type='CalibratedSubnetHook'),
]
