"""Width-slimmable MobileNetV1 for MMDetection (and MMAction2's 2D recognizers).

mmdet has no MobileNetV1, so the network is built here from mmcv bricks
(``ConvModule``, ``DepthwiseSeparableConvModule``) with mmdet's backbone
conventions (``widen_factor``, ``out_indices``, ``frozen_stages``,
``norm_eval``), then made slimmable.
"""
from typing import Dict, Sequence, Tuple

from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import nn

from ...ops import make_divisible
from ...registry import MODELS
from .base import SlimBackboneMixin, last_conv_out_channels
from .built_here import FrozenStagesTrainMixin, check_stage_args, default_init_cfg

@MODELS.register_module()
class SlimMobileNetV1(FrozenStagesTrainMixin, SlimBackboneMixin, BaseModule):
    """MobileNetV1 (Howard et al., 2017), width-slimmable.

    Layer table at ``widen_factor=1.0`` (every conv is followed by BN + ReLU;
    a block is a 3x3 depthwise conv then a 1x1 pointwise conv,
    mmcv's ``DepthwiseSeparableConvModule``):

    ======== ============================== =========== ============
    module   blocks (out_channels, stride)  out stride  out channels
    ======== ============================== =========== ============
    stem     3x3 conv, stride 2             2           32
    layer1   (64, 1)                        2           64
    layer2   (128, 2), (128, 1)             4           128
    layer3   (256, 2), (256, 1)             8           256
    layer4   (512, 2), (512, 1) x 5         16          512
    layer5   (1024, 2), (1024, 1)           32          1024
    ======== ============================== =========== ============

    State-dict keys follow the module names, e.g.
    ``layer4.3.depthwise_conv.conv.weight`` or ``stem.bn.running_mean``.

    At runtime width ``w`` every pointwise conv (and the stem) keeps its first
    ``active_channels(C, w)`` output channels; depthwise convs follow their
    input. Output ``i`` has ``out_channels_at(w)[i]`` channels.

    Args:
        widen_factor (float): static multiplier of every channel count,
            rounded with ``make_divisible(c * widen_factor, 8)``; fixes the
            full (width 1.0) network. Default: 1.0.
        out_indices (Sequence[int]): 0-based indices into
            ``[layer1, ..., layer5]`` of the stages to output (strides
            2/4/8/16/32). Default: (1, 2, 3, 4), i.e. strides 4-32 for FPN.
        frozen_stages (int): as in mmdet's MobileNetV2: ``>= 0`` freezes the
            stem, ``k >= 1`` also ``layer1..layer{k}`` (eval mode, no grad).
            -1 freezes nothing. Default: -1.
        norm_cfg (dict): norm layers; must build ``nn.BatchNorm2d`` (the only
            norm that slims). Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): activation. Default: ``dict(type='ReLU')``.
        norm_eval (bool): keep BN layers in eval mode (frozen running stats)
            in training. Default: False.
        init_cfg (dict | list[dict], optional): mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint=...)``; None means Kaiming
            convs and constant-1 norms.
    """

    #: per stage: (out_channels, stride) of each depthwise-separable block
    arch_settings = (
        ((64, 1),),
        ((128, 2), (128, 1)),
        ((256, 2), (256, 1)),
        ((512, 2),) + ((512, 1),) * 5,
        ((1024, 2), (1024, 1)),
    )
    stem_channels = 32

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU'),
                 norm_eval: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg if init_cfg is not None else default_init_cfg())
        num_stages = len(self.arch_settings)
        out_indices = check_stage_args('SlimMobileNetV1', out_indices, frozen_stages,
                                       num_stages, max_frozen=num_stages)
        if not widen_factor > 0:
            raise ValueError(f'SlimMobileNetV1: widen_factor must be positive, '
                             f'got {widen_factor!r}')
        self.widen_factor = widen_factor
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.norm_eval = norm_eval

        in_channels = make_divisible(self.stem_channels * widen_factor, 8)
        self.stem = ConvModule(3, in_channels, 3, stride=2, padding=1,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.layers = []
        for i, blocks in enumerate(self.arch_settings):
            stage, in_channels = self._make_stage(in_channels, blocks)
            name = f'layer{i + 1}'
            self.add_module(name, stage)
            self.layers.append(name)

        self.make_slim()
        self._freeze_stages()

    def _make_stage(self, in_channels: int, blocks) -> Tuple[nn.Sequential, int]:
        modules = []
        for channels, stride in blocks:
            out_channels = make_divisible(channels * self.widen_factor, 8)
            modules.append(DepthwiseSeparableConvModule(
                in_channels, out_channels, 3, stride=stride, padding=1,
                norm_cfg=self.norm_cfg, act_cfg=self.act_cfg))
            in_channels = out_channels
        return nn.Sequential(*modules), in_channels

    def width_stages(self) -> Dict[str, Sequence[str]]:
        # no residual sums: each stage's depthwise convs follow their input
        return {'stem': ['stem'], **{name: [name] for name in self.layers}}

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        # In stage order, the order forward() returns the outputs in.
        return tuple(last_conv_out_channels(getattr(self, name))
                     for i, name in enumerate(self.layers) if i in self.out_indices)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        frozen = ([self.stem] if self.frozen_stages >= 0 else []) + [
            getattr(self, f'layer{i}') for i in range(1, self.frozen_stages + 1)]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

