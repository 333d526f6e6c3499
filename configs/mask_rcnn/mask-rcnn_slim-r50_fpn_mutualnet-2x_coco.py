# MutualNet Mask R-CNN + FPN, ResNet-50, COCO 2x (paper §6.4; the paper's
# backbone is VGG-16: see mask-rcnn_slim-vgg16_fpn_mutualnet-2x_coco.py).
# Only what MutualNet needs differs from the stock config.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

# The backbone runs at any width in [0.7, 1.0]; FPN and heads are shared.
# BN keeps training (norm_eval=False): every width has its own statistics,
# re-estimated per subnet by tools/calibrate_bn.py after training.
model = dict(backbone=dict(type='SlimResNet', norm_eval=False))

# One view per training resolution 1000x{600,480,360,240}: the full network
# gets the first, each sub-network a random one (flip shared by all views).
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiResolution',
         scales=[(1000, 600), (1000, 480), (1000, 360), (1000, 240)],
         transforms=[dict(type='Resize', keep_ratio=True),
                     dict(type='PackDetInputs')]),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

custom_hooks = [
    # each iteration: full width + min width + 2 random widths, ground-truth losses
    dict(type='MutualLearningHook', width_range=(0.7, 1.0), num_random=2, distill='gt'),
    # val/test at one subnet (width, scale) with its calibrated BN statistics;
    # default: the full network. Test another one without editing this file:
    #   --cfg-options subnet.width=0.8 "subnet.scale=(1000,360)"
    dict(type='CalibratedSubnetHook'),
]
