# MutualNet SlowFast-4x16 R50 on Kinetics-400 (paper §4.3, §6.5): only the Slow
# pathway slims (width [0.63, 1.0]) and is downscaled (x{1, 0.8, 0.63} in size,
# x{1, 0.63, 0.4} in frames) inside the backbone; the Fast pathway keeps its full
# input and width and joins through the adaptive fusion (time sampling + resize).
_base_ = 'mmaction::recognition/slowfast/slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.py'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

model = dict(backbone=dict(
    type='SlimResNet3dSlowFast',
    slow_size_factors=(1.0, 178 / 224, 142 / 224),
    # the paper's gamma_t {1, 0.63, 0.4}: 4, 3 and 2 of the Slow pathway's 4 frames
    slow_frame_factors=(1.0, 0.63, 0.4)))

# No MultiResolution: the backbone makes the Slow pathway's views, so the stock
# pipeline (32 frames at 224 px for the Fast pathway) stays as it is.
# SafeCheckpointHook: a full disk leaves the kept and best checkpoints loadable (the
# stock hook deletes the old ones first); the stock interval and max_keep_ckpts=3 stay
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.63, 1.0), num_random=2, distill='kl'),
    dict(type='CalibratedSubnetHook'),  # val/test width (full network by default)
]
