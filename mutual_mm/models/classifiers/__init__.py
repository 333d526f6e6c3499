"""A minimal image classifier for MutualNet pre-training (ImageNet-style)."""
from .image_classifier import MutualImageClassifier, MutualLinearClsHead

__all__ = ['MutualImageClassifier', 'MutualLinearClsHead']
