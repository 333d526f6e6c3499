# MutualNet ResNet-50 on ImageNet (paper §6.1): widths [0.7, 1.0], resolutions
# {224, 192, 160, 128}, KL distillation; 120 epochs, batch 512, LR 0.2 cosine,
# crop area 0.08..1 (MutualNet's apps/resnet50.yml, whose width range is the §6.2
# [0.9, 1.0] variant). mmdet's ResNet layout (same keys as torchvision://resnet50).
_base_ = './_base_/imagenet_mutualnet.py'

crop_ratio_range = (0.08, 1.0)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ClsRandomResizedCrop', scale=224, crop_ratio_range=crop_ratio_range),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='MultiResolution', scales={{_base_.resolutions}},
         transforms=[dict(type='Resize', keep_ratio=False), dict(type='PackClsInputs')]),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))

model = dict(
    backbone=dict(type='SlimResNet', depth=50, out_indices=(3,), norm_eval=False),
    head=dict(in_channels=2048))

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=0.2))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, eta_min=0.0, convert_to_iter_based=True)]
auto_scale_lr = dict(base_batch_size=512)
custom_hooks = [dict(type='MutualLearningHook', width_range=(0.7, 1.0),
                     num_random=2, distill='kl')]
