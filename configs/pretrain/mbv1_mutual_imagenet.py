# MutualNet MobileNetV1 1.0x on ImageNet (paper §6.1): widths [0.25, 1.0],
# resolutions {224, 192, 160, 128}, KL distillation; 250 epochs, batch 1024,
# LR 0.5 cosine (MutualNet's apps/mobilenet_v1.yml). Backbone keys: `backbone.*`.
_base_ = './_base_/imagenet_mutualnet.py'

model = dict(
    backbone=dict(type='SlimMobileNetV1', widen_factor=1.0, out_indices=(4,)),
    head=dict(in_channels=1024))
custom_hooks = [dict(type='MutualLearningHook', width_range=(0.25, 1.0),
                     num_random=2, distill='kl')]
