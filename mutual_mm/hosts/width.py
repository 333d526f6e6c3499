"""Setting the width a whole model runs at.

A whole model (an mmdet detector, an mmaction recognizer, ...) has one slimmable
backbone and downstream layers that consume its slimmed features (its family's
:meth:`~mutual_mm.hosts.HostAdapter.consumer`). Those are made input-following
the first time a width is set, so a stock config needs no edit beyond the
backbone swap; layers that never see slimmed features take the slim layers'
full-size fast path and compute exactly what they computed before.
"""
import contextlib
from typing import Optional

from torch import nn

from ..models.backbones.base import SlimBackboneMixin
from ..models.slimming import find_slim_backbone, unwrap_model
from ..ops import WidthGrid
from .base import host_of


def prepare_consumers(model: nn.Module) -> None:
    """Make the layers that consume the backbone's features input-following.
    Idempotent; a no-op for a bare backbone."""
    if not isinstance(unwrap_model(model), SlimBackboneMixin):
        host_of(model).prepare_consumer()


def set_model_width(model: nn.Module, width: float,
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


def get_model_width(model: nn.Module) -> float:
    """The width ``model`` runs at."""
    return find_slim_backbone(model).width


@contextlib.contextmanager
def model_at_width(model: nn.Module, width: float, grid: Optional[WidthGrid] = None):
    """Run a block at ``width``, then restore the previous width (also when the
    block raises)."""
    previous = get_model_width(model)
    set_model_width(model, width, grid)
    try:
        yield model
    finally:
        set_model_width(model, previous)
