# MutualNet Slow-8x8 R50 on Kinetics-400 (paper §6.5): width [0.63, 1.0],
# Slow input {224, 178, 142} px x {8, 5, 3} frames, KL to the full network.
# Only what MutualNet needs differs from the stock config.
_base_ = 'mmaction::recognition/slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

model = dict(backbone=dict(type='SlimResNet3dSlowOnly'))

# The stock augmentation, then one view per (size, frames); the full network
# gets 224 px x 8 frames, each sub-network a random view (the frame subsets
# are spread uniformly over the sampled clip).
train_pipeline = [
    dict(type='DecordInit', io_backend='disk'),
    dict(type='SampleFrames', clip_len=8, frame_interval=8, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='MultiResolution', scales=[224, 178, 142], frames=[8, 5, 3],
         transforms=[dict(type='Resize', keep_ratio=False),
                     dict(type='FormatShape', input_format='NCTHW'),
                     dict(type='PackActionInputs')]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# SafeCheckpointHook: a full disk leaves the kept and best checkpoints loadable (the
# stock hook deletes the old ones first); the stock interval and max_keep_ckpts=3 stay
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.63, 1.0), num_random=2, distill='kl'),
    # val/test at one subnet (width, size, frames) with its calibrated BN
    # statistics; default: the full network. Another one without editing this file:
    #   --cfg-options subnet.width=0.8 subnet.scale=178 subnet.frames=5
    dict(type='CalibratedSubnetHook'),
]
