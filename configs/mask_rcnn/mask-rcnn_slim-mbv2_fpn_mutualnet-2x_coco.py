# MutualNet Mask R-CNN + FPN with MobileNetV2, COCO 2x: width [0.7, 1.0]
# (the paper's MobileNetV2 range), resolutions 1000x{600,480,360,240}.
_base_ = './mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True, type='SlimMobileNetV2', widen_factor=1.0,
        out_indices=(1, 2, 4, 7),  # strides 4/8/16/32: 24/32/96/1280 channels
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    neck=dict(in_channels=[24, 32, 96, 1280]))

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.7, 1.0), num_random=2, distill='gt'),
    dict(type='CalibratedSubnetHook'),
]
