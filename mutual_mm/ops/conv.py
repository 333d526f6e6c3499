"""Slimmable 2D/3D convolutions."""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import SlimInputMixin, copy_param, dense_factory_kwargs, share_tensors


class _SlimConvNd(SlimInputMixin):
    """Slimming logic shared by :class:`SlimConv2d` and :class:`SlimConv3d`.

    Channel rules for an input with ``in_c`` channels:

    * normal conv (``groups == 1``): output ``active_channels(out_channels,
      width)`` if ``slim_out`` else ``out_channels``; weight
      ``W[:out_c, :in_c]`` (or the fixed-channel layout, see
      :class:`~mutual_mm.ops.base.SlimInputMixin`).
    * depthwise conv (``groups == in_channels == out_channels`` at
      construction): output channels and groups follow the input
      (``groups = in_c``, weight ``W[:in_c]``); ``width`` is ignored, so a
      depthwise conv always matches the layer feeding it.
    * other grouped convs: ``groups`` stays fixed; ``in_c`` and ``out_c`` must
      be divisible by it; weight ``W[:out_c, :in_c // groups]``.
    """

    _conv_fn: Callable = None  # F.conv2d / F.conv3d, set by subclasses
    _dense_cls: type = None    # nn.Conv2d / nn.Conv3d

    def _init_slim_conv(self, slim_out: bool, fixed_in_channels: int,
                        fixed_in_position: str, divisor: int) -> None:
        self._init_slim(slim_out=slim_out, divisor=divisor)
        self._init_fixed_in(fixed_in_channels, fixed_in_position,
                            self.in_channels, self.groups)
        self.depthwise = (self.groups == self.in_channels == self.out_channels)

    # --- channel planning ------------------------------------------------
    def active_out_channels(self, in_channels: int) -> int:
        if self.depthwise:
            return int(in_channels)
        return self._width_out_channels(self.out_channels)

    def _plan(self, in_c: int) -> Tuple[int, int]:
        """Validate ``in_c`` and return ``(out_c, groups)``."""
        self._check_in_channels(in_c, self.in_channels)
        if self.depthwise:
            return in_c, in_c
        out_c = self.active_out_channels(in_c)
        g = self.groups
        if g > 1 and (in_c % g or out_c % g):
            raise ValueError(
                f'{type(self).__name__}: grouped conv with groups={g} cannot run '
                f'with {in_c} input and {out_c} output channels (width '
                f'{self.width}); both must be divisible by {g}')
        return out_c, g

    def _sliced_params(self, in_c: int, out_c: int
                       ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        bias = None if self.bias is None else self.bias[:out_c]
        if self.depthwise:
            return self.weight[:in_c], bias
        weight = self._select_weight(self.weight, out_c, in_c // self.groups,
                                     self.in_channels // self.groups)
        return weight, bias

    # --- forward -----------------------------------------------------------
    def _conv_with_groups(self, x: torch.Tensor, weight: torch.Tensor,
                          bias: Optional[torch.Tensor], groups: int) -> torch.Tensor:
        # Same as the parent's _conv_forward, except for ``groups`` (which the
        # parent reads from self.groups); mutating self.groups instead would
        # not be safe under re-entrancy or scripting.
        if self.padding_mode != 'zeros':
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        else:
            padding = self.padding
        return type(self)._conv_fn(x, weight, bias, self.stride, padding,
                                   self.dilation, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_c = int(x.shape[1])
        out_c, groups = self._plan(in_c)
        if in_c == self.in_channels and out_c == self.out_channels:
            # Fast path: full layer, no slicing, no copies.
            return self._conv_forward(x, self.weight, self.bias)
        weight, bias = self._sliced_params(in_c, out_c)
        if groups == self.groups:
            return self._conv_forward(x, weight, bias)
        return self._conv_with_groups(x, weight, bias, groups)

    # --- conversion ----------------------------------------------------------
    @classmethod
    def from_dense(cls, module: nn.Module, **slim_kwargs):
        """Slim version of the dense conv ``module`` sharing its parameter
        objects (so its state dict, requires_grad, device and dtype are
        unchanged).  Hooks registered on ``module`` are not carried over.

        Args:
            module: an instance of the dense torch class.
            **slim_kwargs: ``slim_out``, ``fixed_in_channels``,
                ``fixed_in_position``, ``divisor``.
        """
        if not isinstance(module, cls._dense_cls):
            raise TypeError(f'{cls.__name__}.from_dense expects an '
                            f'{cls._dense_cls.__name__}, got {type(module).__name__}')
        # Build on the meta device (no allocation, no init), then adopt the
        # dense layer's tensors.
        new = cls(module.in_channels, module.out_channels, module.kernel_size,
                  stride=module.stride, padding=module.padding,
                  dilation=module.dilation, groups=module.groups,
                  bias=module.bias is not None, padding_mode=module.padding_mode,
                  device='meta', dtype=module.weight.dtype, **slim_kwargs)
        share_tensors(new, module)
        return new

    def to_static(self, in_channels: int) -> nn.Module:
        """Plain ``nn.Conv2d``/``nn.Conv3d`` equal to this layer at the
        current width for ``in_channels`` input channels (weights copied;
        same train/eval mode and requires_grad)."""
        in_c = int(in_channels)
        out_c, groups = self._plan(in_c)
        weight, bias = self._sliced_params(in_c, out_c)
        static = self._dense_cls(
            in_c, out_c, self.kernel_size, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=groups, bias=bias is not None,
            padding_mode=self.padding_mode, **dense_factory_kwargs(self.weight))
        static.weight = copy_param(weight, self.weight.requires_grad)
        if bias is not None:
            static.bias = copy_param(bias, self.bias.requires_grad)
        return static.train(self.training)


_CONV_DOC = """Slimmable ``nn.{dense}``.

    Takes the same arguments as ``nn.{dense}`` plus, keyword-only:

    Args:
        slim_out (bool): output channels shrink with :attr:`width`
            (default True). Ignored by depthwise convs, whose output follows
            the input.
        fixed_in_channels (int): number of input channels that never slim
            (default 0), see ``fixed_in_position``.
        fixed_in_position (str): ``'last'`` (input is ``[slimmed | fixed]``,
            the default) or ``'first'`` (input is ``[fixed | slimmed]``).
        divisor (int): channel rounding, see
            :func:`~mutual_mm.ops.active_channels` (default 8).

    Input channels follow ``x.shape[1]``; see ``_SlimConvNd`` for the
    depthwise and grouped rules.  At full input and output size the
    parent's forward runs on the unsliced weight.
    """


class SlimConv2d(_SlimConvNd, nn.Conv2d):
    __doc__ = _CONV_DOC.format(dense='Conv2d')
    _conv_fn = staticmethod(F.conv2d)
    _dense_cls = nn.Conv2d

    def __init__(self, *args, slim_out: bool = True, fixed_in_channels: int = 0,
                 fixed_in_position: str = 'last', divisor: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_slim_conv(slim_out, fixed_in_channels, fixed_in_position, divisor)


class SlimConv3d(_SlimConvNd, nn.Conv3d):
    __doc__ = _CONV_DOC.format(dense='Conv3d')
    _conv_fn = staticmethod(F.conv3d)
    _dense_cls = nn.Conv3d

    def __init__(self, *args, slim_out: bool = True, fixed_in_channels: int = 0,
                 fixed_in_position: str = 'last', divisor: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_slim_conv(slim_out, fixed_in_channels, fixed_in_position, divisor)
