"""Width-slimmable VGG (with BN) for MMDetection: the backbone of MutualNet's
COCO Mask R-CNN + FPN experiment.

The layers are built exactly as mmcv's :class:`mmcv.cnn.VGG` builds them (with
:func:`mmcv.cnn.vgg.make_vgg_layer`), so the state-dict keys are torchvision's
``vgg{11,13,16,19}[_bn]`` ``features.N.*`` keys and a torchvision checkpoint
minus ``classifier.*`` loads strictly.
"""
from typing import Dict, List, Sequence, Tuple

from mmcv.cnn.vgg import make_vgg_layer
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS
from .base import SlimBackboneMixin
from .built_here import FrozenStagesTrainMixin, check_stage_args, default_init_cfg


@MODELS.register_module()
class SlimVGG(FrozenStagesTrainMixin, SlimBackboneMixin, BaseModule):
    """VGG as an FPN backbone, width-slimmable.

    Five stages of 3x3 convs (+ BN) + ReLU, each ending with a 2x2 max pool;
    stage ``i`` has ``64 * 2**i`` channels (512 from stage 3 on) and output
    stride ``2**(i + 1)``. Blocks per stage: depth 11 (1,1,2,2,2),
    13 (2,2,2,2,2), 16 (2,2,3,3,3), 19 (2,2,4,4,4).

    At runtime width ``w`` every conv keeps its first ``active_channels(C, w)``
    output channels; output ``i`` has ``out_channels_at(w)[i]`` channels.

    Stage widths (see :meth:`width_stages`): stages ``stage0`` .. ``stage4``,
    the 0-based stages above (``out_indices`` and ``frozen_stages`` count them
    the same way; the layers of stage ``i`` are ``features[start:end]`` of
    ``range_sub_modules[i]``). VGG has no residual sums and no stem apart
    from ``stage0``: a stage's first conv reads the previous stage's output
    at whatever width it has.

    Args:
        depth (int): 11, 13, 16 or 19. Default: 16.
        with_bn (bool): BN after every conv (torchvision's ``vgg16_bn``).
            Default: True.
        out_indices (Sequence[int]): 0-based stages whose (pooled) output is
            returned. Default: (1, 2, 3, 4): strides 4/8/16/32 with
            128/256/512/512 channels, the four FPN levels.
        frozen_stages (int): freeze stages ``0..frozen_stages`` (eval mode, no
            grad), so ``1`` freezes everything up to stride 4 like mmdet's
            ResNet ``frozen_stages=1``; -1 freezes nothing. Note: mmcv's VGG
            freezes ``range(frozen_stages)``, one stage fewer. Default: -1.
        norm_eval (bool): keep BN layers in eval mode (frozen running stats)
            in training. Default: False.
        ceil_mode (bool): ``ceil_mode`` of the max pools. Default: False.
        init_cfg (dict | list[dict], optional): mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint=...)`` (a torchvision
            checkpoint needs its ``classifier.*`` keys removed, or
            ``prefix``/non-strict loading); None means Kaiming convs and
            constant-1 BN.
    """

    arch_settings = {
        11: (1, 1, 2, 2, 2),
        13: (2, 2, 2, 2, 2),
        16: (2, 2, 3, 3, 3),
        19: (2, 2, 4, 4, 4),
    }

    def __init__(self,
                 depth: int = 16,
                 with_bn: bool = True,
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 ceil_mode: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg if init_cfg is not None else default_init_cfg())
        if depth not in self.arch_settings:
            raise ValueError(f'SlimVGG: invalid depth {depth!r}; valid depths are '
                             f'{sorted(self.arch_settings)}')
        self.stage_blocks = self.arch_settings[depth]
        num_stages = len(self.stage_blocks)
        out_indices = check_stage_args('SlimVGG', out_indices, frozen_stages, num_stages,
                                       max_frozen=num_stages - 1)
        self.depth = depth
        self.with_bn = with_bn
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        # As mmcv's VGG: one flat `features` Sequential (torchvision's indices),
        # with the [start, end) index range of each stage kept aside.
        layers: List[nn.Module] = []
        self.range_sub_modules: List[Tuple[int, int]] = []
        self.stage_channels: List[int] = []
        inplanes = 3
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = 64 * 2**i if i < 4 else 512
            start = len(layers)
            layers.extend(make_vgg_layer(inplanes, planes, num_blocks,
                                         with_bn=with_bn, ceil_mode=ceil_mode))
            self.range_sub_modules.append((start, len(layers)))
            self.stage_channels.append(planes)
            inplanes = planes
        self.features = nn.Sequential(*layers)

        self.make_slim()
        self._freeze_stages()

    def stage_modules(self, i: int) -> List[nn.Module]:
        """The layers of stage ``i`` (0-based), in order."""
        start, end = self.range_sub_modules[i]
        return [self.features[j] for j in range(start, end)]

    def width_stages(self) -> Dict[str, List[str]]:
        return {f'stage{i}': [f'features.{j}' for j in range(start, end)]
                for i, (start, end) in enumerate(self.range_sub_modules)}

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        # In stage order, the order forward() returns the outputs in.
        return tuple(c for i, c in enumerate(self.stage_channels) if i in self.out_indices)

    def forward(self, x):
        outs = []
        for i in range(len(self.stage_blocks)):
            for layer in self.stage_modules(i):
                x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            for module in self.stage_modules(i):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False
