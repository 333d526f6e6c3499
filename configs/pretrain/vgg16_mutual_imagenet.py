# MutualNet VGG-16-BN on ImageNet: the backbone of the paper's COCO Mask R-CNN
# (§6.4: "we first pre-train VGG-16 on ImageNet following US-Net and MutualNet",
# width [0.25, 1.0]); the paper gives no other setting, so this uses the ResNet-50
# recipe (120 epochs, batch 512, LR 0.2 cosine, crop area 0.08..1). The classifier
# is global average pooling + one linear layer, not torchvision's three FC layers
# (a detection backbone never uses them). Keys: torchvision's `features.N.*` under
# `backbone.`, so configs/mask_rcnn/*vgg16* load it with prefix='backbone.'.
_base_ = './r50_mutual_imagenet.py'

model = dict(
    backbone=dict(_delete_=True, type='SlimVGG', depth=16, with_bn=True, out_indices=(4,)),
    head=dict(in_channels=512))
custom_hooks = [dict(type='MutualLearningHook', width_range=(0.25, 1.0),
                     num_random=2, distill='kl')]
