"""Width-slimmable MobileNetV2 for MMDetection."""
from typing import Dict, List, Tuple

from mmdet.models.backbones import MobileNetV2

from ...registry import MODELS
from .base import SlimBackboneMixin, residual_stages, last_conv_out_channels


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

    Stage widths (see :meth:`width_stages`): stages ``stem`` (``conv1``),
    ``layer1`` .. ``layer7`` and ``conv2``. A stage's first inverted residual
    changes the channel count (or strides), so it has no skip connection and
    each skip sum lies inside one stage; its depthwise conv follows the
    expansion conv of its own stage (``layer1``, without expansion, follows the
    stem). Should a ``widen_factor`` give a stage's first block a skip
    connection (equal rounded channels, stride 1), that stage joins the
    previous one (``widen_factor=0.25``: ``stem+layer1``, both 8 channels).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.make_slim()

    def width_stages(self) -> Dict[str, List[str]]:
        def adds_its_input(stage):  # layer1..layer7: a skip connection; conv2: none
            first = next(iter(stage.children()))
            return getattr(first, 'with_res_shortcut', False)
        return residual_stages(self, ['conv1'], self.layers, adds_its_input)

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        return tuple(last_conv_out_channels(getattr(self, self.layers[i]))
                     for i in self.out_indices)
