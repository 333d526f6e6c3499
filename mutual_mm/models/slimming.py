"""Finding the slim backbone and the BN layers of a (possibly wrapped) host model."""
from typing import Iterator, Tuple

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .backbones.base import SlimBackboneMixin


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside an mmengine/torch wrapper (DDP, FSDP...)."""
    while hasattr(model, 'module') and isinstance(model.module, nn.Module):
        model = model.module
    return model


def find_slim_backbone(model: nn.Module) -> SlimBackboneMixin:
    """``model.backbone`` if it is slimmable (or ``model`` itself if it is a slim
    backbone); otherwise a TypeError naming what was found."""
    model = unwrap_model(model)
    if isinstance(model, SlimBackboneMixin):
        return model
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, SlimBackboneMixin):
        return backbone
    found = type(backbone).__name__ if backbone is not None else 'no backbone'
    raise TypeError(
        f'{type(model).__name__} has {found} where a slimmable backbone is needed: '
        "use one of mutual_mm's Slim* backbones (SlimResNet, SlimMobileNetV2, "
        'SlimMobileNetV1, SlimVGG, ...) as model.backbone')


def batch_norms(model: nn.Module) -> Iterator[Tuple[str, _BatchNorm]]:
    """(name, layer) of every BN layer of ``model`` that keeps running statistics."""
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, _BatchNorm) and module.track_running_stats:
            yield name, module
