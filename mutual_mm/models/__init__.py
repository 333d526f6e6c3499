"""Slimmable backbones and the model-level configuration API."""
from .backbones import *  # noqa: F401,F403
from .classifiers import MutualImageClassifier, MutualLinearClsHead  # noqa: F401
from .fusion import AdaptiveFusion
from .slimming import (active_config, find_slim_backbone, get_active_config,
                       prepare_consumers, set_active_config, unwrap_model)

__all__ = [
    'AdaptiveFusion', 'active_config', 'find_slim_backbone', 'get_active_config', 'prepare_consumers',
    'set_active_config', 'unwrap_model'
]
