"""Slimmable primitives for MutualNet: layers that run at any channel width.

Pure PyTorch (no mmcv / mmdet imports), so the layers can be used by any
model and tested in isolation.
"""
from .base import SlimInputMixin, SlimMixin
from .channels import (Width, WidthGrid, active_channels, is_stage_widths, make_divisible,
                       mean_width, normalize_width, parse_width, width_str)
from .conv import SlimConv2d, SlimConv3d
from .convert import (convert_to_slim, export_static, get_width,
                      register_dense_equivalent, set_width, width_context)
from .linear import SlimLinear
from .norm import SlimBatchNorm2d, SlimBatchNorm3d

__all__ = [
    'SlimMixin', 'SlimInputMixin', 'SlimConv2d', 'SlimConv3d', 'SlimLinear', 'SlimBatchNorm2d',
    'SlimBatchNorm3d', 'make_divisible', 'active_channels', 'WidthGrid', 'Width',
    'normalize_width', 'is_stage_widths', 'width_str', 'parse_width', 'mean_width',
    'convert_to_slim', 'set_width', 'get_width', 'width_context', 'export_static',
    'register_dense_equivalent',
]
