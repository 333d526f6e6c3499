# MutualNet X3D-M on Kinetics-400 (paper §6.5): width [0.63, 1.0],
# {224, 192, 160, 142} px x {16, 12, 9, 6} frames, KL to the full network.
# mmaction2 ships X3D-M for testing only; the training part below follows the
# official recipe (PySlowFast X3D-M: SGD, cosine, 300 epochs, lr 0.1 at batch 256,
# wd 5e-5), linearly scaled to 8 GPUs x 16 clips.
_base_ = 'mmaction::recognition/x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

model = dict(backbone=dict(type='SlimX3D'))

data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'

train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=5, num_clips=1, target_fps=30),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='MultiResolution', scales=[224, 192, 160, 142], frames=[16, 12, 9, 6],
         transforms=[dict(type='Resize', keep_ratio=False),
                     dict(type='FormatShape', input_format='NCTHW'),
                     dict(type='PackActionInputs')]),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=5, num_clips=1,
         target_fps=30, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file=ann_file_train,
                 data_prefix=dict(video=data_root), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=ann_file_val, test_mode=True,
                 data_prefix=dict(video=data_root_val), pipeline=val_pipeline))
val_evaluator = dict(type='AccMetric')

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-5),
    clip_grad=dict(max_norm=40, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=35,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=265, eta_min=0, by_epoch=True, begin=35, end=300),
]
# SafeCheckpointHook: a full disk leaves the kept and best checkpoints loadable
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook', interval=5, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=128)

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.63, 1.0), num_random=2, distill='kl'),
    # e.g. --cfg-options subnet.width=0.8 subnet.scale=160 subnet.frames=9
    dict(type='CalibratedSubnetHook'),
]
