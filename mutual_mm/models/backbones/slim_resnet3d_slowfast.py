"""SlowFast with a width/space/time-adaptive Slow pathway (paper §4.2.2)."""
from itertools import product
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmaction.models.backbones import ResNet3dSlowFast
from torch import nn

from ...ops import SlimInputMixin, active_channels, convert_to_slim
from ...registry import MODELS
from ..fusion import AdaptiveFusion, uniform_time_positions
from .base import SlimBackboneMixin


@MODELS.register_module()
class SlimResNet3dSlowFast(SlimBackboneMixin, ResNet3dSlowFast):
    """mmaction2's :class:`~mmaction.models.backbones.ResNet3dSlowFast` (e.g.
    SlowFast-4x16 R50, alpha=8, beta=1/8) where only the Slow pathway adapts.

    The Slow pathway is width-slimmable and can run on fewer frames and a smaller
    spatial size; the Fast pathway always runs whole on the full clip. Every
    lateral connection goes through :class:`~mutual_mm.models.AdaptiveFusion`.
    Same constructor arguments and state-dict keys as the stock backbone (stock
    checkpoints load strictly); identical to it at width 1.0 and full input.

    The Slow pathway's input configurations (its "views", chosen per sub-network
    by :class:`~mutual_mm.engine.MutualLearningHook`, since the data must stay
    whole for the Fast pathway) are all pairs of:

    Args:
        slow_size_factors (Sequence[float]): spatial factors of the Slow input,
            the first the full one. Defaults to (1, 178/224, 142/224): the paper's
            224/178/142 (gamma_s 1, 0.8, 0.63).
        slow_frame_factors (Sequence[float]): temporal factors of the Slow input
            (frames = round(factor * T_slow), at least 1). Defaults to
            (1, 5/8, 3/8): the paper's 8/5/3 frames for an 8-frame Slow pathway.
        **kwargs: the arguments of ``ResNet3dSlowFast``.

    The head's input is ``(slow, fast)``; mmaction2's ``SlowFastHead`` pools and
    concatenates ``[fast | slow]``: its classifier keeps its FIRST columns for the
    Fast features (see :meth:`adapt_consumer`).
    """

    def __init__(self, *args,
                 slow_size_factors: Sequence[float] = (1.0, 178 / 224, 142 / 224),
                 slow_frame_factors: Sequence[float] = (1.0, 5 / 8, 3 / 8), **kwargs):
        for name, factors in (('slow_size_factors', slow_size_factors),
                              ('slow_frame_factors', slow_frame_factors)):
            if not factors or any(not 0 < f <= 1 for f in factors) or factors[0] != 1.0:
                raise ValueError(f'{name}={tuple(factors)!r}: valid are factors in (0, 1], '
                                 'the first 1.0 (the full input)')
        super().__init__(*args, **kwargs)
        if not self.slow_path.lateral:
            raise ValueError('SlimResNet3dSlowFast needs lateral connections '
                             "(slow_pathway=dict(lateral=True, ...))")
        if self.slow_path.lateral_inv or self.slow_path.lateral_norm:
            raise ValueError('SlimResNet3dSlowFast supports the standard lateral '
                             'convolution only (lateral_inv=False, lateral_norm=False)')
        self.input_views: List[Tuple[float, float]] = list(
            product(slow_size_factors, slow_frame_factors))
        self.input_view = 0
        self.fusion = AdaptiveFusion()
        self._make_slim()

    def _lateral_names(self) -> List[str]:
        names = ['conv1_lateral'] if hasattr(self.slow_path, 'conv1_lateral') else []
        return names + list(self.slow_path.lateral_connections)

    def _make_slim(self) -> None:
        # Only the Slow pathway slims; its lateral convs read the whole Fast pathway.
        convert_to_slim(self.slow_path, skip=self._lateral_names(), strict=True)
        for lateral, stage in zip(self._lateral_names(), self.slow_path.res_layers):
            fast_channels = getattr(self.slow_path, lateral).conv.out_channels
            block = getattr(self.slow_path, stage)[0]
            for conv in (block.conv1.conv, getattr(block.downsample, 'conv', None)):
                if conv is not None:  # [slow | fast]: the fast columns are the LAST
                    conv.set_input_layout(fast_channels, 'last')

    # ------------------------------------------------------------- configuration
    def set_width(self, width: float) -> None:
        from ...ops import set_width
        set_width(self.slow_path, width)

    @property
    def width(self) -> float:
        from ...ops import get_width
        return get_width(self.slow_path)

    def set_input_view(self, index: int) -> None:
        """Run the Slow pathway on input view ``index`` of :attr:`input_views`."""
        if not 0 <= index < len(self.input_views):
            raise ValueError(f'input view {index} is not in 0..{len(self.input_views) - 1}')
        self.input_view = index

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        return (self.slow_path.feat_dim, self.fast_path.feat_dim)

    def out_channels_at(self, width: float) -> Tuple[int, ...]:
        return (active_channels(self.slow_path.feat_dim, width), self.fast_path.feat_dim)

    def adapt_consumer(self, consumer: nn.Module) -> None:
        """SlowFastHead pools and concatenates ``[fast | slow]``: a classifier
        reading both keeps its first (Fast) columns fixed."""
        slow, fast = self.full_out_channels
        for module in consumer.modules():
            if isinstance(module, SlimInputMixin) and \
                    getattr(module, 'in_features', None) == slow + fast:
                module.set_input_layout(fast, 'first')

    # ------------------------------------------------------------------ forward
    def _downscale_slow_input(self, x_slow: torch.Tensor) -> torch.Tensor:
        size_factor, frame_factor = self.input_views[self.input_view]
        t, h, w = x_slow.shape[2:]
        frames = max(1, round(frame_factor * t))
        if frames != t:
            x_slow = x_slow.index_select(2, uniform_time_positions(t, frames, x_slow.device))
        size = (max(1, round(size_factor * h)), max(1, round(size_factor * w)))
        if size != (h, w):
            n, c, tt = x_slow.shape[:3]
            flat = x_slow.transpose(1, 2).reshape(n * tt, c, h, w)
            flat = F.interpolate(flat, size=size, mode='bilinear', align_corners=False,
                                 antialias=True)
            x_slow = flat.reshape(n, tt, c, *size).transpose(1, 2)
        return x_slow

    def forward(self, x: torch.Tensor) -> tuple:
        x_slow = F.interpolate(x, mode='nearest',
                               scale_factor=(1.0 / self.resample_rate, 1.0, 1.0))
        x_slow = self._downscale_slow_input(x_slow)
        x_slow = self.slow_path.maxpool(self.slow_path.conv1(x_slow))
        x_fast = F.interpolate(
            x, mode='nearest',
            scale_factor=(1.0 / (self.resample_rate // self.speed_ratio), 1.0, 1.0))
        x_fast = self.fast_path.maxpool(self.fast_path.conv1(x_fast))
        x_slow = self.fusion(x_slow, self.slow_path.conv1_lateral(x_fast))
        for i, layer_name in enumerate(self.slow_path.res_layers):
            x_slow = getattr(self.slow_path, layer_name)(x_slow)
            x_fast = getattr(self.fast_path, layer_name)(x_fast)
            if i != len(self.slow_path.res_layers) - 1:  # no fusion after the last stage
                lateral = getattr(self.slow_path, self.slow_path.lateral_connections[i])
                x_slow = self.fusion(x_slow, lateral(x_fast))
        return (x_slow, x_fast)
