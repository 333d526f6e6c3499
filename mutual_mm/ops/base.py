"""Shared base of the slimmable layers."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from .channels import active_channels

_FIXED_POSITIONS = ('last', 'first')


class _WeightPrefix(torch.autograd.Function):
    """``weight[:rows, :cols]`` with a one-step backward.

    Autograd's own backward of two chained slices allocates and zero-fills a
    ``[rows, C_in]`` gradient, copies into it, then does the same again at the
    full shape. This backward zero-fills the full-shape gradient once and
    copies the active block once: on a CPU it removes about half of the
    runtime-slimming overhead of a ResNet-50 step (benchmarks/bench_backbones.py).
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        ctx.full_shape = weight.shape
        return weight[:rows, :cols]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        full = grad.new_zeros(ctx.full_shape)
        full[:grad.shape[0], :grad.shape[1]].copy_(grad)
        return full, None, None


def weight_prefix(weight: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The view ``weight[:rows, :cols]``; its gradient is built in one step
    (see :class:`_WeightPrefix`) when autograd records it."""
    if rows == weight.shape[0] and cols == weight.shape[1]:
        return weight
    if torch.is_grad_enabled() and weight.requires_grad:
        return _WeightPrefix.apply(weight, rows, cols)
    return weight[:rows, :cols]


class SlimMixin:
    """Mixin that turns a dense torch layer into a slimmable one.

    A slim layer is a subclass of the dense torch class (``SlimConv2d`` is an
    ``nn.Conv2d``), so ``isinstance`` checks, weight-init functions and
    state-dict keys are those of the dense layer.  Its parameters always have
    the full shape; the forward pass uses a prefix slice of them.

    Input channels always follow the incoming tensor; output channels follow
    :attr:`width` (set from outside, usually via
    :func:`mutual_mm.ops.set_width`) when :attr:`slim_out` is true.

    Attributes:
        width (float): active width multiplier, 1.0 = the full layer.
        slim_out (bool): whether the output channels shrink with ``width``.
        divisor (int): channel counts are rounded to multiples of it, see
            :func:`mutual_mm.ops.active_channels`.
    """

    width: float = 1.0
    slim_out: bool = False
    divisor: int = 8

    def _init_slim(self, *, slim_out: bool, divisor: int) -> None:
        if int(divisor) != divisor or divisor <= 0:
            raise ValueError(f'divisor must be a positive integer, got {divisor!r}')
        self.width = 1.0
        self.slim_out = bool(slim_out)
        self.divisor = int(divisor)

    # --- interface -------------------------------------------------------
    def input_channels_of(self, x: torch.Tensor) -> int:
        """Channel count of an input tensor (dim 1; Linear overrides)."""
        return int(x.shape[1])

    def active_out_channels(self, in_channels: int) -> int:
        """Number of channels the layer outputs for an input with
        ``in_channels`` channels at the current width."""
        raise NotImplementedError

    def to_static(self, in_channels: int) -> nn.Module:
        """A plain torch layer equal to this layer at the current width for
        inputs with ``in_channels`` channels (weights copied)."""
        raise NotImplementedError

    # --- helpers ---------------------------------------------------------
    def _width_out_channels(self, full_out: int) -> int:
        if not self.slim_out:
            return full_out
        return active_channels(full_out, self.width, self.divisor)

    def _check_in_channels(self, in_channels: int, full_in: int) -> None:
        if in_channels > full_in:
            raise ValueError(
                f'{type(self).__name__}: input has {in_channels} channels but the '
                f'layer has only {full_in} input channels')
        if in_channels <= 0:
            raise ValueError(
                f'{type(self).__name__}: input has {in_channels} channels')


class SlimInputMixin(SlimMixin):
    """Slim layer with a weight whose dim 1 is indexed by input channels
    (conv and linear); handles the fixed-input-channel layouts.

    ``fixed_in_channels = f > 0`` describes an input made of a slimmed part
    and ``f`` channels that never slim (e.g. a concatenated coordinate map or
    an un-slimmed side branch):

    * ``'last'``: input is ``[slimmed | fixed]``; the fixed channels use the
      LAST ``f`` weight columns, the slimmed ones the first ``in_c - f``.
    * ``'first'``: input is ``[fixed | slimmed]``; the fixed channels use the
      first ``f`` columns and the slimmed ones the columns right after them,
      i.e. the weight is the prefix ``W[:, :in_c]``.
    """

    fixed_in_channels: int = 0
    fixed_in_position: str = 'last'

    def _init_fixed_in(self, fixed_in_channels: int, fixed_in_position: str,
                       full_in: int, groups: int = 1) -> None:
        if fixed_in_position not in _FIXED_POSITIONS:
            raise ValueError(
                f"fixed_in_position must be 'last' or 'first', got {fixed_in_position!r}")
        if int(fixed_in_channels) != fixed_in_channels or not 0 <= fixed_in_channels <= full_in:
            raise ValueError(
                f'fixed_in_channels must be an integer in [0, {full_in}], '
                f'got {fixed_in_channels!r}')
        if fixed_in_channels and groups != 1:
            # The column bookkeeping below is per group; with groups > 1 the
            # fixed channels would straddle groups, which no model needs.
            raise ValueError(
                f'fixed_in_channels={fixed_in_channels} is only supported for '
                f'groups=1, got groups={groups}')
        self.fixed_in_channels = int(fixed_in_channels)
        self.fixed_in_position = fixed_in_position

    def set_input_layout(self, fixed_in_channels: int,
                         fixed_in_position: str = 'last') -> None:
        """Declare that ``fixed_in_channels`` input channels never slim (see the
        class docstring), e.g. the Fast features concatenated into the Slow
        pathway of SlowFast."""
        full_in = self.weight.shape[1] * getattr(self, 'groups', 1)
        self._init_fixed_in(fixed_in_channels, fixed_in_position, full_in,
                            getattr(self, 'groups', 1))

    def _check_in_channels(self, in_channels: int, full_in: int) -> None:
        super()._check_in_channels(in_channels, full_in)
        if in_channels < self.fixed_in_channels:
            raise ValueError(
                f'{type(self).__name__}: input has {in_channels} channels, fewer '
                f'than its {self.fixed_in_channels} fixed input channels')

    def _select_weight(self, weight: torch.Tensor, out_rows: int, in_cols: int,
                       full_cols: int) -> torch.Tensor:
        """Select the weight rows (dim 0, output channels) ``[:out_rows]`` and
        the columns (dim 1) used by ``in_cols`` input channels; a view
        whenever the selection is a prefix."""
        f = self.fixed_in_channels
        if in_cols != full_cols and f and self.fixed_in_position == 'last':
            # [slimmed part | fixed part]: fixed columns are the last f of the
            # FULL weight, not of the prefix.
            rows = weight[:out_rows]
            return torch.cat([rows[:, :in_cols - f], rows[:, full_cols - f:]], dim=1)
        # Plain prefix, and also the 'first' layout: cat(W[:, :f],
        # W[:, f:f + (in_c - f)]) == W[:, :in_c].
        return weight_prefix(weight, out_rows, in_cols)

    def extra_repr(self) -> str:
        s = super().extra_repr()  # type: ignore[misc]
        s += f', slim_out={self.slim_out}'
        if self.fixed_in_channels:
            s += (f', fixed_in_channels={self.fixed_in_channels}, '
                  f'fixed_in_position={self.fixed_in_position!r}')
        return s


def share_tensors(dst: nn.Module, src: nn.Module) -> None:
    """Make ``dst`` hold exactly the parameter and buffer objects of ``src``
    (same names, shared storage, requires_grad, device and dtype), so that an
    optimizer built on ``src`` still updates ``dst``."""
    dst._parameters.clear()
    dst._parameters.update(src._parameters)
    dst._buffers.clear()
    dst._buffers.update(src._buffers)
    dst._non_persistent_buffers_set = set(src._non_persistent_buffers_set)
    dst.train(src.training)


def copy_param(t: torch.Tensor, requires_grad: bool) -> nn.Parameter:
    """Detached contiguous copy of a (possibly sliced) parameter.

    ``requires_grad`` is passed explicitly: a slice taken under
    ``torch.no_grad()`` (as in export) never requires grad itself.
    """
    return nn.Parameter(t.detach().clone().contiguous(), requires_grad=requires_grad)


def dense_factory_kwargs(t: torch.Tensor) -> Dict[str, object]:
    return {'device': t.device, 'dtype': t.dtype}
