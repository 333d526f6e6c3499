# Charades fine-tuning of a Kinetics-400 MutualNet Slow-8x8 R50 (paper Table VIII
# protocol: full width, no MutualLearningHook), PySlowFast's Charades recipe
# (configs/Charades/SLOWFAST_16x8_R50.yaml) adapted to mmaction2: 157 classes,
# BCE, clip labels, mAP, 10 clips x 3 crops at test with max over views.
_base_ = 'mmaction::recognition/slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py'
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

# <- the Kinetics MutualNet checkpoint to start from, e.g. what
#    configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py writes
#    (its 400-class fc_cls is skipped with a size-mismatch warning: a new 157-class head)
kinetics_mutualnet_ckpt = ('work_dirs/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb/'
                           'epoch_256.pth')
load_from = kinetics_mutualnet_ckpt

model = dict(
    backbone=dict(type='SlimResNet3dSlowOnly', pretrained=None),
    cls_head=dict(type='MaxClipI3DHead', num_classes=157, multi_class=True,
                  loss_cls=dict(type='BCELossWithLogits'), average_clips='max'))

# Charades_v1_480 videos, {id}.mp4 (for Charades_v1_rgb frames, {id}/{id}-000001.jpg:
# data_prefix=dict(img=DIR) and RawFrameDecode instead of DecordInit/DecordDecode)
dataset_type = 'CharadesDataset'
data_root = data_root_val = 'data/charades/videos'
ann_file_train = 'data/charades/annotations/Charades_v1_train.csv'
ann_file_val = ann_file_test = 'data/charades/annotations/Charades_v1_test.csv'
sampling = dict(type='SampleFrames', clip_len=8, frame_interval=8)
train_pipeline = [
    dict(type='DecordInit'), dict(**sampling, num_clips=1),
    dict(type='CharadesClipLabels'),  # label = actions inside the sampled clip
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(256, 340)),  # PySlowFast's scale jitter
    dict(type='RandomCrop', size=224), dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
val_pipeline = [  # one centre clip and crop, video-level labels
    dict(type='DecordInit'), dict(**sampling, num_clips=1, test_mode=True),
    dict(type='DecordDecode'), dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
test_pipeline = [  # 10 clips x 3 crops, max over the 30 views (the head's 'max')
    dict(type='DecordInit'), dict(**sampling, num_clips=10, test_mode=True),
    dict(type='DecordDecode'), dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
train_dataloader = dict(batch_size=2, dataset=dict(  # 8 GPUs x 2 = PySlowFast's 16
    type=dataset_type, ann_file=ann_file_train, data_prefix=dict(video=data_root),
    pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, dataset=dict(
    type=dataset_type, ann_file=ann_file_val, data_prefix=dict(video=data_root_val),
    pipeline=val_pipeline, test_mode=True))
test_dataloader = dict(dataset=dict(
    type=dataset_type, ann_file=ann_file_test, data_prefix=dict(video=data_root_val),
    pipeline=test_pipeline, test_mode=True))
val_evaluator = dict(type='CharadesMAP')
test_evaluator = val_evaluator

# 57 epochs, lr 0.0375 at batch 16, x0.1 at epochs 41 and 49, 4 warm-up epochs from 1e-4
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=57, val_begin=1, val_interval=6)
optim_wrapper = dict(optimizer=dict(lr=0.0375, momentum=0.9, weight_decay=1e-4),
                     clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4 / 0.0375, by_epoch=True, begin=0, end=4,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=57, milestones=[41, 49], gamma=0.1)]
# SafeCheckpointHook: a full disk leaves the kept and best checkpoints loadable
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook', interval=6, max_keep_ckpts=3,
                                     save_best='charades/mAP', rule='greater'))
auto_scale_lr = dict(enable=False, base_batch_size=16)
