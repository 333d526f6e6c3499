"""Width-slimmable ResNet for MMDetection (and any codebase using mmdet's ResNet)."""
from typing import Dict, List, Tuple

from mmdet.models.backbones import ResNet

from ...registry import MODELS
from .base import SlimBackboneMixin, residual_stages


@MODELS.register_module()
class SlimResNet(SlimBackboneMixin, ResNet):
    """mmdet's :class:`~mmdet.models.backbones.ResNet`, width-slimmable.

    Same constructor arguments as mmdet's ``ResNet`` (``depth`` 18/34/50/101/152,
    ``out_indices``, ``frozen_stages``, ``norm_eval``, ``norm_cfg``, ``style``,
    ``strides``, ``dilations``, ``deep_stem``, ``avg_down``, ``init_cfg`` such as
    ``dict(type='Pretrained', checkpoint='torchvision://resnet50')``) and the same
    state-dict keys, so stock torchvision/mmdet checkpoints load strictly. A config
    swaps ``type='ResNet'`` for ``type='SlimResNet'`` and changes nothing else.

    At width ``w`` every convolution keeps its first ``active_channels(C, w)``
    output channels; the residual branch and the shortcut round identically, so
    their sum always agrees. Output ``i`` has ``out_channels_at(w)[i]`` channels.

    Stage widths (``set_width((w_stem, w1, w2, w3, w4))``, see
    :meth:`width_stages`): stages ``stem`` (``conv1``/``bn1``, or ``stem`` with
    ``deep_stem``), ``layer1`` .. ``layer4``. Every stage's first block has a
    projection shortcut (``downsample``), so each residual sum lies inside one
    stage, except in ResNet-18/34, whose ``layer1`` adds the stem's output to its
    blocks' (an identity shortcut): there the stem and ``layer1`` are one stage,
    ``stem+layer1`` (4 stages).

    Not supported (raise at construction): ``dcn`` and ``plugins`` (their mmcv
    layers are not slimmable) and norm layers other than BatchNorm
    (``norm_cfg=dict(type='BN')``).
    """

    def __init__(self, *args, **kwargs):
        for unsupported in ('dcn', 'plugins'):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f'SlimResNet cannot slim {unsupported}={kwargs[unsupported]!r}: '
                    f'use {unsupported}=None')
        super().__init__(*args, **kwargs)
        self.make_slim()

    def width_stages(self) -> Dict[str, List[str]]:
        stem = ['stem'] if self.deep_stem else ['conv1', self.norm1_name]
        return residual_stages(self, stem, self.res_layers)

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        planes = self.base_channels
        stage_out = [planes * 2**i * self.block.expansion for i in range(self.num_stages)]
        return tuple(stage_out[i] for i in self.out_indices)
