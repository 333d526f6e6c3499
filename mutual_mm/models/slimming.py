"""Setting the active configuration of a whole model.

A whole model (an mmdet detector, an mmaction recognizer, ...) has one slimmable
backbone and downstream layers that consume its slimmed features: the neck
(e.g. FPN's lateral convolutions) or, without a neck, the heads. Those consumers
are made *input-following* (their convolutions/linears read only as many input
channels as arrive, their output stays full) the first time a configuration is
set, so a stock config needs no edit beyond the backbone swap. Layers of the
consumer that never see slimmed features take the slim layers' full-size fast
path and compute exactly what they computed before.
"""
import contextlib
from typing import Dict, Optional

from torch import nn

from ..ops import WidthGrid, convert_to_slim
from .backbones.base import SlimBackboneMixin

# Children of a host model that consume backbone features, in the order they are
# looked for: the neck if there is one, else the heads.
CONSUMER_NAMES = ('neck', 'cls_head', 'head', 'rpn_head', 'roi_head', 'bbox_head')


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside an mmengine/torch wrapper (DDP, FSDP...)."""
    while hasattr(model, 'module') and isinstance(model.module, nn.Module):
        model = model.module
    return model


def find_slim_backbone(model: nn.Module) -> SlimBackboneMixin:
    """``model.backbone`` if it is slimmable (or ``model`` itself if it is a slim
    backbone); otherwise a TypeError naming what was found."""
    model = unwrap_model(model)
    if isinstance(model, SlimBackboneMixin):
        return model
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, SlimBackboneMixin):
        return backbone
    found = type(backbone).__name__ if backbone is not None else 'no backbone'
    raise TypeError(
        f'{type(model).__name__} has {found} where a slimmable backbone is needed: '
        "use one of mutual_mm's Slim* backbones (SlimResNet, SlimMobileNetV2, "
        'SlimMobileNetV1, SlimVGG, ...) as model.backbone')


def prepare_consumers(model: nn.Module) -> None:
    """Make the layers that consume the backbone's features input-following.

    Idempotent; a no-op for a bare backbone.
    """
    model = unwrap_model(model)
    if isinstance(model, SlimBackboneMixin):
        return
    for name in CONSUMER_NAMES:
        consumer = getattr(model, name, None)
        if isinstance(consumer, nn.Module):
            convert_to_slim(consumer, slim_out=False)
            find_slim_backbone(model).adapt_consumer(consumer)
            return


def set_active_config(model: nn.Module, width: float,
                      grid: Optional[WidthGrid] = None) -> None:
    """Run ``model`` at ``width`` from now on.

    Args:
        model: a host model with a slim backbone (or a slim backbone).
        width: the width multiplier, in (0, 1].
        grid: if given, ``width`` must lie on it (a ValueError lists the grid).
    """
    if grid is not None:
        width = grid.validate(width)
    backbone = find_slim_backbone(model)
    prepare_consumers(model)
    backbone.set_width(width)


def get_active_config(model: nn.Module) -> Dict[str, float]:
    """The configuration ``model`` runs at, e.g. ``{'width': 0.6}``."""
    return dict(width=find_slim_backbone(model).width)


@contextlib.contextmanager
def active_config(model: nn.Module, width: float, grid: Optional[WidthGrid] = None):
    """Run a block at ``width``, then restore the previous configuration (also
    when the block raises)."""
    previous = get_active_config(model)
    set_active_config(model, width, grid)
    try:
        yield model
    finally:
        set_active_config(model, **previous)
