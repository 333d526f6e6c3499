# ImageNet-1k pre-training of a slim backbone with MutualNet (paper §6.1), shared
# by the configs in configs/pretrain/. Runs without mmpretrain: the classifier,
# dataset, transforms and metric are mutual_mm's (registered in mmengine's root
# registries, hence default_scope='mmengine').
#
# Data (data/imagenet/, the usual layout):
#   train/<wnid>/*.JPEG    one folder per class (1000)
#   val/<wnid>/*.JPEG      the validation images sorted into class folders
# or lists: set ann_file='meta/train.txt' / 'meta/val.txt' ("relative/path label"
# lines, mmpretrain's format) in the datasets below.
#
# The recipe is SlimmableNet's / MutualNet's released one (apps/*.yml there): SGD
# momentum 0.9 nesterov, weight decay 1e-4 on conv and fc weights only (none on
# depthwise convs, BN and biases), cosine LR to 0, batch 1024 (8 GPUs x 128 here;
# `--auto-scale-lr` rescales the LR for another total batch), Inception crop
# (area 0.25..1 for the MobileNets, 0.08..1 for ResNet-50/VGG-16), flip; no
# color jitter / lighting (the released code has them; mmcv has no such
# transform). Each model config sets the width range, epochs and LR.
default_scope = 'mmengine'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

data_root = 'data/imagenet/'
# Training resolutions: the first is the full network's (paper: {224,192,160,128}).
resolutions = [224, 192, 160, 128]
crop_ratio_range = (0.25, 1.0)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ClsRandomResizedCrop', scale=224, crop_ratio_range=crop_ratio_range),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # one view per resolution, each resized from the same 224 crop (as MutualNet's
    # bilinear interpolation of the batch); MutualLearningHook feeds each member one
    dict(type='MultiResolution', scales=resolutions,
         transforms=[dict(type='Resize', keep_ratio=False), dict(type='PackClsInputs')]),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ClsResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    # the subnet's resolution: CalibratedSubnetHook / build_lookup_table set
    # it here (the last Resize), resizing the 224 center crop as MutualNet does
    dict(type='Resize', scale=224, keep_ratio=False),
    dict(type='PackClsInputs'),
]

train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageListDataset', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageListDataset', data_root=data_root,
                 data_prefix=dict(img_path='val'), pipeline=test_pipeline,
                 test_mode=True))
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='MutualImageClassifier',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(),  # set by each config
    head=dict(type='MutualLinearClsHead', num_classes=1000, in_channels=1024))

max_epochs = 250
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, dwconv_decay_mult=0.0))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, eta_min=0.0, convert_to_iter_based=True)]
auto_scale_lr = dict(base_batch_size=1024, enable=False)

# Sub-networks learn the KL divergence to the full network (distill='kl').
# Validation during training measures the full network (1.0x, 224) only; other
# subnets need their BN statistics calibrated (tools/calibrate_bn.py), and
# tools/build_lookup_table.py evaluates them all.
custom_hooks = [dict(type='MutualLearningHook', width_range=(0.25, 1.0),
                     num_random=2, distill='kl')]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a full disk leaves the kept checkpoints loadable (mmengine's deletes one first)
    checkpoint=dict(type='SafeCheckpointHook', interval=5, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=True,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=True)
log_level = 'INFO'
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
randomness = dict(seed=1995)  # the released configs' seed
load_from = None
resume = False
