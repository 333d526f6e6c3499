"""What every slimmable backbone of mutual_mm shares."""
from typing import Sequence, Tuple

from torch import nn

from mmcv.cnn.bricks import wrappers as mmcv_wrappers

from ...ops import (SlimConv2d, SlimConv3d, SlimLinear, active_channels,
                    convert_to_slim, get_width, register_dense_equivalent, set_width)

# mmcv's Conv2d/Conv3d/Linear (built by `build_conv_layer` in mmaction's 3D
# ResNets) only add empty-batch handling to torch's forward: slim them as torch's.
register_dense_equivalent(mmcv_wrappers.Conv2d, SlimConv2d)
register_dense_equivalent(mmcv_wrappers.Conv3d, SlimConv3d)
register_dense_equivalent(mmcv_wrappers.Linear, SlimLinear)


class SlimBackboneMixin:
    """Mixed into a host backbone class (``class SlimResNet(SlimBackboneMixin,
    ResNet)``) to make it width-slimmable without changing its constructor, its
    forward or its state-dict keys.

    The host builds its dense layers as usual; :meth:`_make_slim` then swaps
    every ``Conv``/``BatchNorm``/``Linear`` for its slim subclass from
    :mod:`mutual_mm.ops` (sharing the very same parameters). At width 1.0 each
    slim layer takes a fast path that calls the dense forward, so the backbone
    *is* the stock one there; at width ``w`` each layer uses the first
    ``active_channels(C, w)`` output channels (the paper's ``W[0:w]``).

    A subclass states :attr:`full_out_channels` (channels of each output at
    width 1.0), from which :meth:`out_channels_at` follows, because the last
    layer of every output stage rounds with the one rule of
    :func:`mutual_mm.ops.active_channels`.
    """

    #: layers whose output channels never shrink (qualified names), e.g. none
    _unslimmed_outputs: Sequence[str] = ()

    #: True for a backbone that makes its own input views, because the data must
    #: stay whole (SlowFast: the Fast pathway reads the full clip). Such a class
    #: has ``input_views`` and ``set_input_view(index)`` (training),
    #: ``set_subnet_input(scale, frames)`` (deployment) and the classmethods
    #: ``subnet_input_cfg(backbone_cfg, scale, frames)`` and
    #: ``view_input_sizes(backbone_cfg, full_size, clip_len)`` (configs).
    owns_input_views: bool = False

    def _make_slim(self) -> None:
        convert_to_slim(self, strict=True)
        for name in self._unslimmed_outputs:
            self.get_submodule(name).slim_out = False

    # ---------------------------------------------------------------- width
    @property
    def width(self) -> float:
        """The active width multiplier of the backbone."""
        return get_width(self)

    def set_width(self, width: float) -> None:
        """Set the active width (0 < width <= 1) of every slim layer."""
        set_width(self, width)

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        """Channels of each output (in ``out_indices`` order) at width 1.0."""
        raise NotImplementedError

    def adapt_consumer(self, consumer: nn.Module) -> None:
        """Called once with the module consuming the backbone's features (after its
        layers were made input-following), for layouts that are not a prefix."""

    def out_channels_at(self, width: float) -> Tuple[int, ...]:
        """Channels of each output at ``width``: what the downstream layers
        receive and the FLOPs counter sees."""
        return tuple(active_channels(c, width) for c in self.full_out_channels)


def last_conv_out_channels(module: nn.Module) -> int:
    """Output channels of the last convolution in ``module`` (a stage's output)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def is_slim_backbone(module: nn.Module) -> bool:
    return isinstance(module, SlimBackboneMixin)
