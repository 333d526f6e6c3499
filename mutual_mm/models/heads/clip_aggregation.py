"""Max-over-clips test aggregation for multi-label recognition heads.

mmaction2's ``BaseHead.average_clip`` averages a video's clip scores
(``average_clips='score'``: logits, ``'prob'``: softmax, ``None``: none). The
Charades protocol (PySlowFast ``ENSEMBLE_METHOD: max``, sigmoid head) takes,
per class, the **max** over all views (temporal clips x spatial crops) of the
sigmoid scores: an action that happens once in a long video is found by the clip
that sees it. :class:`MaxClipMixin` adds ``average_clips='max'`` to any head;
:class:`MaxClipI3DHead` and :class:`MaxClipSlowFastHead` are the two registered
heads (the stock ones' arguments and state-dict keys, so Kinetics checkpoints
load unchanged).
"""
import torch
from mmaction.models.heads import I3DHead, SlowFastHead

from ...registry import MODELS


class MaxClipMixin:
    """Adds ``average_clips='max'`` to an mmaction2 head: a video's score for a
    class is the max over its ``num_segs`` views of ``sigmoid(logit)``. The
    stock modes (``'score'``, ``'prob'``, ``None``) are unchanged."""

    def average_clip(self, cls_scores: torch.Tensor, num_segs: int = 1) -> torch.Tensor:
        if self.average_clips != 'max':
            return super().average_clip(cls_scores, num_segs)
        views = cls_scores.view((cls_scores.shape[0] // num_segs, num_segs)
                                + cls_scores.shape[1:])
        return views.sigmoid().amax(dim=1)


@MODELS.register_module()
class MaxClipI3DHead(MaxClipMixin, I3DHead):
    """mmaction2's ``I3DHead`` (SlowOnly, I3D, X3D-style) plus
    ``average_clips='max'``: max over clips of the sigmoid scores.

    Args:
        average_clips (str, optional): ``'max'``, or the stock ``'score'``,
            ``'prob'``, ``None``.
        **kwargs: the other arguments of ``I3DHead`` (``num_classes``,
            ``in_channels``, ``loss_cls``, ``multi_class``, ``dropout_ratio``...).
    """


@MODELS.register_module()
class MaxClipSlowFastHead(MaxClipMixin, SlowFastHead):
    """mmaction2's ``SlowFastHead`` plus ``average_clips='max'``: max over clips
    of the sigmoid scores.

    Args:
        average_clips (str, optional): ``'max'``, or the stock ``'score'``,
            ``'prob'``, ``None``.
        **kwargs: the other arguments of ``SlowFastHead``.
    """
