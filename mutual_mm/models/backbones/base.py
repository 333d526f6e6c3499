"""What every slimmable backbone of mutual_mm shares."""
from typing import List, Optional, Sequence, Tuple

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

    The host builds its dense layers as usual; :meth:`make_slim` then swaps
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

    def make_slim(self) -> None:
        """Swap every dense layer for its slim twin (same parameters); a subclass
        calls it at the end of its ``__init__``, once its layers exist."""
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


class ViewOwningBackbone(SlimBackboneMixin):
    """A slim backbone that makes its own input views, because the data must stay
    whole (SlowFast: the Fast pathway reads the full clip, so only the Slow
    pathway's input is resized and subsampled, inside the backbone). The hook, BN
    calibration and deployment reach such a backbone only through these methods
    (:func:`owns_input_views` tells it apart): the data pipeline is left alone.

    Attributes:
        input_views (list[tuple[float, float]]): the training views, as factors
            of the full input (size, frames); view 0 is the full input.
    """

    input_views: List[Tuple[float, float]]

    def set_input_view(self, index: int) -> None:
        """Training: run on input view ``index`` of :attr:`input_views`."""
        raise NotImplementedError

    def set_subnet_input(self, scale: Optional[int], frames: Optional[int]) -> None:
        """Deployment: run at a subnet's ``scale`` (short side) and ``frames``
        (None: the whole input in that dimension)."""
        raise NotImplementedError

    @classmethod
    def subnet_input_cfg(cls, backbone_cfg: dict, scale: Optional[int],
                         frames: Optional[int]) -> None:
        """Write a subnet's input into this backbone's config, in place (how an
        exported subnet keeps it)."""
        raise NotImplementedError

    @classmethod
    def view_input_sizes(cls, backbone_cfg: dict, full_size: Optional[int],
                         clip_len: Optional[int]) -> Tuple[Optional[list], Optional[list]]:
        """(sizes, frames) of the input views a config of this backbone trains, in
        absolute terms, for inputs of ``full_size`` px and ``clip_len`` frames."""
        raise NotImplementedError


def owns_input_views(backbone) -> bool:
    """Whether a backbone (or backbone class) makes its own input views."""
    cls = backbone if isinstance(backbone, type) else type(backbone)
    return issubclass(cls, ViewOwningBackbone)


def last_conv_out_channels(module: nn.Module) -> int:
    """Output channels of the last convolution in ``module`` (a stage's output)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def is_slim_backbone(module: nn.Module) -> bool:
    return isinstance(module, SlimBackboneMixin)
