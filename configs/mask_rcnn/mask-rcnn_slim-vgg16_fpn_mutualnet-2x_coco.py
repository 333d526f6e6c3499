# MutualNet Mask R-CNN + FPN with VGG-16-BN, COCO 2x: the paper's §6.4 setting
# (width [0.25, 1.0], training resolutions 1000x{600,480,360,240}).
_base_ = './mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True, type='SlimVGG', depth=16, with_bn=True,
        out_indices=(1, 2, 3, 4),  # strides 4/8/16/32 for the FPN
        frozen_stages=0,
        # The paper starts from a MutualNet ImageNet VGG-16 (configs/pretrain);
        # point `checkpoint` at it (prefix='backbone.') to reproduce that.
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://vgg16_bn')),
    neck=dict(in_channels=[128, 256, 512, 512]))

custom_hooks = [
    dict(type='MutualLearningHook', width_range=(0.25, 1.0), num_random=2, distill='gt'),
    dict(type='CalibratedSubnetHook'),
]
