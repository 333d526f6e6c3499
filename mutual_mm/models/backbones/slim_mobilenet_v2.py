"""Width-slimmable MobileNetV2 for MMDetection."""
from typing import Tuple

from mmdet.models.backbones import MobileNetV2

from ...registry import MODELS
from .base import SlimBackboneMixin, last_conv_out_channels


@MODELS.register_module()
class SlimMobileNetV2(SlimBackboneMixin, MobileNetV2):
    """mmdet's :class:`~mmdet.models.backbones.MobileNetV2`, width-slimmable.

    Same constructor arguments (``widen_factor``, ``out_indices`` (indices into
    ``layer1..layer7, conv2``), ``frozen_stages``, ``norm_cfg``, ``act_cfg``,
    ``norm_eval``, ``with_cp``, ``init_cfg``) and state-dict keys as mmdet's.
    ``widen_factor`` fixes the full network; the runtime width ``w`` then keeps
    the first ``active_channels(C, w)`` channels of every layer, the expansion
    layer included; depthwise convolutions follow their input, and each
    inverted residual's input and output round identically so the skip
    connection always adds matching tensors. Like US-Net we slim every layer,
    the last 1x1 convolution (``conv2``, 1280 channels) included.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.make_slim()

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        return tuple(last_conv_out_channels(getattr(self, self.layers[i]))
                     for i in self.out_indices)
