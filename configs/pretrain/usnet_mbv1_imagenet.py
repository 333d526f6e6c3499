# US-Net MobileNetV1 1.0x on ImageNet, the paper's baseline: widths [0.25, 1.0]
# with in-place distillation (sandwich rule: max, min, 2 random widths), every
# member at 224 (no MultiResolution). Same recipe as mbv1_mutual_imagenet.py.
_base_ = './mbv1_mutual_imagenet.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ClsRandomResizedCrop', scale=224, crop_ratio_range={{_base_.crop_ratio_range}}),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='MutualLearningHook', width_range=(0.25, 1.0), num_random=2,
                     distill='kl', multi_resolution=False)]
