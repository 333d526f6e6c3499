"""Slimmable backbones, the fusion block, the pre-training classifier."""
from .backbones import *  # noqa: F401,F403
from .classifiers import MutualImageClassifier, MutualLinearClsHead  # noqa: F401
from ..extras import available
from .fusion import AdaptiveFusion
from .slimming import find_slim_backbone, unwrap_model

__all__ = ['AdaptiveFusion', 'find_slim_backbone', 'unwrap_model']

if available('mmaction'):
    from .heads import MaxClipI3DHead, MaxClipMixin, MaxClipSlowFastHead  # noqa: F401
