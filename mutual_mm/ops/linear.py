"""Slimmable linear layer."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import SlimInputMixin, copy_param, dense_factory_kwargs, share_tensors


class SlimLinear(SlimInputMixin, nn.Linear):
    """Slimmable ``nn.Linear``.

    Takes the same arguments as ``nn.Linear`` (``in_features,
    out_features, bias=True, device=None, dtype=None``) plus, keyword-only:

    Args:
        slim_out (bool): output features shrink with :attr:`width`. Default
            False, because a Linear is usually a classifier whose outputs are
            the classes.
        fixed_in_channels (int): number of input features that never slim
            (default 0).
        fixed_in_position (str): ``'last'`` (default) or ``'first'``, see
            :class:`~mutual_mm.ops.base.SlimInputMixin`.
        divisor (int): channel rounding (default 8).

    Input features follow ``x.shape[-1]``.
    """

    def __init__(self, *args, slim_out: bool = False, fixed_in_channels: int = 0,
                 fixed_in_position: str = 'last', divisor: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_slim(slim_out=slim_out, divisor=divisor)
        self._init_fixed_in(fixed_in_channels, fixed_in_position, self.in_features)

    def input_channels_of(self, x: torch.Tensor) -> int:
        return int(x.shape[-1])

    def active_out_channels(self, in_channels: int) -> int:
        return self._width_out_channels(self.out_features)

    def _sliced_params(self, in_c: int
                       ) -> Tuple[int, torch.Tensor, Optional[torch.Tensor]]:
        self._check_in_channels(in_c, self.in_features)
        out_c = self.active_out_channels(in_c)
        weight = self._select_weight(self.weight, out_c, in_c, self.in_features)
        bias = None if self.bias is None else self.bias[:out_c]
        return out_c, weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_c = int(x.shape[-1])
        out_c = self.active_out_channels(in_c)
        if in_c == self.in_features and out_c == self.out_features:
            return F.linear(x, self.weight, self.bias)  # fast path
        _, weight, bias = self._sliced_params(in_c)
        return F.linear(x, weight, bias)

    @classmethod
    def from_dense(cls, module: nn.Linear, **slim_kwargs) -> 'SlimLinear':
        """Slim version of ``module`` sharing its parameter objects.

        Args:
            module: an ``nn.Linear``.
            **slim_kwargs: ``slim_out``, ``fixed_in_channels``,
                ``fixed_in_position``, ``divisor``.
        """
        if not isinstance(module, nn.Linear):
            raise TypeError(f'{cls.__name__}.from_dense expects an nn.Linear, '
                            f'got {type(module).__name__}')
        new = cls(module.in_features, module.out_features, bias=module.bias is not None,
                  device='meta', dtype=module.weight.dtype, **slim_kwargs)
        share_tensors(new, module)
        return new

    def to_static(self, in_channels: int) -> nn.Linear:
        """Plain ``nn.Linear`` equal to this layer at the current width for
        ``in_channels`` input features (weights copied)."""
        out_c, weight, bias = self._sliced_params(int(in_channels))
        static = nn.Linear(int(in_channels), out_c, bias=bias is not None,
                           **dense_factory_kwargs(self.weight))
        static.weight = copy_param(weight, self.weight.requires_grad)
        if bias is not None:
            static.bias = copy_param(bias, self.bias.requires_grad)
        return static.train(self.training)
