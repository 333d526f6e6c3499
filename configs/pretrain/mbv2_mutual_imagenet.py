# MutualNet MobileNetV2 1.0x on ImageNet (paper §6.1): widths [0.7, 1.0],
# resolutions {224, 192, 160, 128}, KL distillation; 250 epochs, batch 1024,
# LR 0.5 cosine (MutualNet's apps/mobilenet_v2.yml). The backbone is mmdet's
# MobileNetV2 layout (same keys), so configs/mask_rcnn/*mbv2* load it with
# init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.').
_base_ = './_base_/imagenet_mutualnet.py'

model = dict(
    backbone=dict(type='SlimMobileNetV2', widen_factor=1.0, out_indices=(7,)),
    head=dict(in_channels=1280))
custom_hooks = [dict(type='MutualLearningHook', width_range=(0.7, 1.0),
                     num_random=2, distill='kl')]
