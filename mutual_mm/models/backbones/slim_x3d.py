"""Width-slimmable X3D for MMAction2."""
from typing import Dict, List, Tuple

from mmaction.models.backbones import X3D

from ...registry import MODELS
from .base import SlimBackboneMixin, residual_stages


@MODELS.register_module()
class SlimX3D(SlimBackboneMixin, X3D):
    """mmaction2's :class:`~mmaction.models.backbones.X3D` (e.g. X3D-M:
    ``gamma_w=1, gamma_b=2.25, gamma_d=2.2``), width-slimmable.

    Same constructor arguments and state-dict keys as the stock backbone. The
    width factor applies to every layer, the squeeze-excitation blocks included
    (paper §6.1, "we multiply the width factor to both the backbone network and SE
    block"): their reduction conv keeps ``active_channels(C_se, w)`` channels and
    their expansion conv matches the slimmed block. Depthwise convolutions
    (the temporal ``conv1_t`` and every block's 3x3x3) follow their input.

    Stage widths (see :meth:`width_stages`): stages ``stem`` (``conv1_s``,
    ``conv1_t``), ``layer1`` .. ``layer4`` (each block's squeeze-excitation at
    its stage's width; every stage's first block has a projection shortcut, so
    each residual sum lies in one stage) and ``conv5`` (the last 1x1 conv).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.make_slim()

    def width_stages(self) -> Dict[str, List[str]]:
        stages = residual_stages(self, ['conv1_s', 'conv1_t'], self.res_layers)
        stages['conv5'] = ['conv5']
        return stages

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        return (self.feat_dim, )
