"""Width-slimmable 2D ResNet of MMAction2 (TSN, TSM-free 2D recognizers)."""
from typing import Dict, List, Tuple

from mmaction.models.backbones import ResNet as ActionResNet

from ...registry import MODELS
from .base import SlimBackboneMixin, residual_stages


@MODELS.register_module()
class SlimActionResNet(SlimBackboneMixin, ActionResNet):
    """mmaction2's own 2D :class:`~mmaction.models.backbones.ResNet` (the TSN
    backbone; not mmdet's, whose arguments and keys differ), width-slimmable.

    Same constructor arguments (``depth``, ``pretrained``,
    ``torchvision_pretrain``, ``out_indices``, ``frozen_stages``, ``norm_eval``,
    ``partial_bn``, ...) and state-dict keys (``conv1.conv``, ``conv1.bn``,
    ``layer1.0.conv1.conv``, ...) as the stock backbone, so stock TSN
    checkpoints load strictly; a config swaps ``type='ResNet'`` for
    ``type='SlimActionResNet'``. At width ``w`` every convolution keeps its first
    ``active_channels(C, w)`` output channels. Segments are folded into the
    batch by the recognizer, so a view's frame count (its number of segments)
    needs nothing here.

    Stage widths (see :meth:`width_stages`): stages ``stem`` (``conv1``),
    ``layer1`` .. ``layer4``; with ResNet-18/34 blocks (``layer1`` has an
    identity shortcut reading the stem) ``stem+layer1``, ``layer2`` ..
    ``layer4``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.make_slim()

    def width_stages(self) -> Dict[str, List[str]]:
        return residual_stages(self, ['conv1'], self.res_layers)

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        return tuple(64 * 2**i * self.block.expansion for i in self.out_indices)
