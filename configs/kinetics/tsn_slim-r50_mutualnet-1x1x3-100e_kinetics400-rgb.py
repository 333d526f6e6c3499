# MutualNet TSN R50 on Kinetics-400: a 2D recognizer (segments folded into the
# batch). Width [0.5, 1.0]; input {224, 192, 160, 128} px x {3, 2} segments
# (a sub-network may see 2 of the 3 segments, spread over the video), KL to
# the full network. Only what MutualNet needs differs from the stock config.
_base_ = 'mmaction::recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

model = dict(backbone=dict(type='SlimActionResNet'))

# The stock augmentation, then one view per (size, segments).
train_pipeline = [
    dict(type='DecordInit', io_backend='disk'),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=3),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='MultiScaleCrop', input_size=224, scales=(1, 0.875, 0.75, 0.66),
         random_crop=False, max_wh_scale_gap=1),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='MultiResolution', scales=[224, 192, 160, 128], frames=[3, 2],
         transforms=[dict(type='Resize', keep_ratio=False),
                     dict(type='FormatShape', input_format='NCHW'),
                     dict(type='PackActionInputs')]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# SafeCheckpointHook: a full disk leaves the kept and best checkpoints loadable (the
# stock hook deletes the old ones first); the stock interval and max_keep_ckpts=3 stay
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2, distill='kl'),
    # val/test at one subnet with its calibrated BN statistics (default: the
    # full network); another: --cfg-options subnet.width=0.8 subnet.scale=160
    dict(type='CalibratedSubnetHook'),
]
