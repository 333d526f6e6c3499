from .base import SlimBackboneMixin, is_slim_backbone
from .slim_action_resnet import SlimActionResNet
from .slim_mobilenet_v1 import SlimMobileNetV1
from .slim_mobilenet_v2 import SlimMobileNetV2
from .slim_resnet import SlimResNet
from .slim_resnet3d_slowfast import SlimResNet3dSlowFast
from .slim_resnet3d_slowonly import SlimResNet3dSlowOnly
from .slim_vgg import SlimVGG
from .slim_x3d import SlimX3D

__all__ = ['SlimBackboneMixin', 'is_slim_backbone', 'SlimResNet', 'SlimMobileNetV2',
    'SlimResNet3dSlowOnly', 'SlimX3D', 'SlimResNet3dSlowFast', 'SlimMobileNetV1', 'SlimVGG',
    'SlimActionResNet']
