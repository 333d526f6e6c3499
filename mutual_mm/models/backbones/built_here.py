"""Conventions of the backbones built here from mmcv bricks (MobileNetV1, VGG:
no stock mmdet class to subclass), so they behave as mmdet's own."""
from typing import Sequence

from torch.nn.modules.batchnorm import _BatchNorm

# Layer names mmengine's initializers match against a module's class name and its
# direct bases: a SlimBatchNorm2d's bases are (_SlimBatchNorm, BatchNorm2d), so
# '_BatchNorm' alone would silently skip every BN after make_slim().
_CONV_LAYERS = ['Conv2d']
_NORM_LAYERS = ['_BatchNorm', 'BatchNorm2d', 'GroupNorm']


def default_init_cfg():
    """Kaiming for convolutions, constant 1 for norms (mmdet's MobileNetV2 default)."""
    return [dict(type='Kaiming', layer=_CONV_LAYERS),
            dict(type='Constant', val=1, layer=_NORM_LAYERS)]


def check_stage_args(name: str, out_indices: Sequence[int], frozen_stages: int,
                     num_stages: int, max_frozen: int) -> tuple:
    """``out_indices`` as a tuple, after checking it and ``frozen_stages``
    (ValueErrors naming the valid values, as mmdet's backbones assert them)."""
    out_indices = tuple(out_indices)
    bad = [i for i in out_indices if i not in range(num_stages)]
    if bad:
        raise ValueError(f'{name}: out_indices {out_indices} has invalid index '
                         f'{bad[0]!r}; valid stage indices are {list(range(num_stages))}')
    if frozen_stages not in range(-1, max_frozen + 1):
        raise ValueError(f'{name}: invalid frozen_stages={frozen_stages!r}; valid '
                         f'values are {list(range(-1, max_frozen + 1))}')
    return out_indices


class FrozenStagesTrainMixin:
    """``train()``: frozen stages (``_freeze_stages``), and with ``norm_eval``
    all BN layers, stay in eval mode."""

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
