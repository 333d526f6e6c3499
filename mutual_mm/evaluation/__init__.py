"""Evaluation protocols: the Charades mAP metric and max-over-clips heads."""
from .charades_map import CharadesMAP
from .clip_aggregation import MaxClipI3DHead, MaxClipMixin, MaxClipSlowFastHead

__all__ = ['CharadesMAP', 'MaxClipMixin', 'MaxClipI3DHead', 'MaxClipSlowFastHead']
