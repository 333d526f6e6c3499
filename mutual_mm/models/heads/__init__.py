"""Heads: max-over-clips recognition heads (video; registered where mmaction2 imports)."""
from .clip_aggregation import MaxClipI3DHead, MaxClipMixin, MaxClipSlowFastHead

__all__ = ['MaxClipMixin', 'MaxClipI3DHead', 'MaxClipSlowFastHead']
