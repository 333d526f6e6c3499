"""Width-slimmable Slow pathway (SlowOnly) for MMAction2."""
from typing import Dict, List, Tuple

from mmaction.models.backbones import ResNet3dSlowOnly

from ...registry import MODELS
from .base import SlimBackboneMixin, residual_stages


@MODELS.register_module()
class SlimResNet3dSlowOnly(SlimBackboneMixin, ResNet3dSlowOnly):
    """mmaction2's :class:`~mmaction.models.backbones.ResNet3dSlowOnly`
    (e.g. Slow-8x8 R50), width-slimmable.

    Same constructor arguments (``depth``, ``pretrained``, ``lateral=False``,
    ``conv1_kernel``, ``conv1_stride_t``, ``pool1_stride_t``, ``inflate``,
    ``out_indices``, ``norm_eval``, ``frozen_stages`` ...) and state-dict keys as
    the stock backbone, so stock Kinetics checkpoints load strictly. At width
    ``w`` every 3D convolution keeps its first ``active_channels(C, w)`` output
    channels. The input's frame count and spatial size are free (the
    MultiResolution views).

    Stage widths (see :meth:`width_stages`): stages ``stem`` (``conv1``),
    ``layer1`` .. ``layer4``; with ResNet-18/34 blocks (``layer1`` has an
    identity shortcut reading the stem) ``stem+layer1``, ``layer2`` ..
    ``layer4``. Not supported: non-local blocks (``non_local``) and
    norm layers other than BatchNorm3d.
    """

    def __init__(self, *args, **kwargs):
        if any(kwargs.get('non_local', ())):
            raise ValueError('SlimResNet3dSlowOnly cannot slim non_local blocks: '
                             'use non_local=(0, 0, 0, 0)')
        super().__init__(*args, **kwargs)
        self.make_slim()

    def width_stages(self) -> Dict[str, List[str]]:
        return residual_stages(self, ['conv1'], self.res_layers)

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        expansion = self.block.expansion
        return tuple(self.base_channels * 2**i * expansion for i in self.out_indices)

