"""Slim backbones. Those subclassing a host library's backbone (to keep its
state-dict names) register only where that library imports (:mod:`mutual_mm.extras`)."""
from ...extras import available
from .base import SlimBackboneMixin, ViewOwningBackbone, is_slim_backbone, owns_input_views
from .slim_mobilenet_v1 import SlimMobileNetV1
from .slim_vgg import SlimVGG

__all__ = ['SlimBackboneMixin', 'ViewOwningBackbone', 'is_slim_backbone', 'owns_input_views',
           'SlimMobileNetV1', 'SlimVGG']

if available('mmdet'):
    from .slim_mobilenet_v2 import SlimMobileNetV2
    from .slim_resnet import SlimResNet
    __all__ += ['SlimResNet', 'SlimMobileNetV2']

if available('mmaction'):
    from .slim_action_resnet import SlimActionResNet
    from .slim_resnet3d_slowfast import SlimResNet3dSlowFast
    from .slim_resnet3d_slowonly import SlimResNet3dSlowOnly
    from .slim_x3d import SlimX3D
    __all__ += ['SlimResNet3dSlowOnly', 'SlimX3D', 'SlimResNet3dSlowFast', 'SlimActionResNet']
