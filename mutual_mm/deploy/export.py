"""Static export of one subnet: weights sliced to their reduced shapes."""
import copy
from typing import Sequence

import torch
from torch import nn

from ..hosts import HostForward, host_of, set_model_width
from ..models.slimming import unwrap_model
from ..ops import SlimMixin, export_static
from ..registry import MODELS
from ..utils import without_pretrained


def export_subnet(model: nn.Module, width: float, input_shape: Sequence[int]) -> nn.Module:
    """A copy of ``model`` at ``width`` whose slim layers are plain torch layers of
    the reduced shapes (its current BN statistics included).

    Args:
        model: a host model with a slim backbone (calibrated for the subnet).
        width: the subnet's width.
        input_shape: shape of one example network input, e.g. ``(1, 3, 8, 224, 224)``
            for a video recognizer, ``(1, 3, 608, 1000)`` for a detector; its size
            does not change the exported shapes, only which layers run.

    The input size is the pipeline's business, except for SlowFast: the copy keeps
    the backbone's Slow input setting (``set_slow_input``); a config builds it
    with ``slow_input=(size, frames)`` in the backbone's config (as
    ``tools/export_subnet.py`` writes it).
    """
    model = copy.deepcopy(unwrap_model(model))
    set_model_width(model, width)
    example = torch.zeros(tuple(input_shape), device=next(model.parameters()).device)
    static = export_static(HostForward(host_of(model), 'exported'), example).model
    left = [n for n, m in static.named_modules() if isinstance(m, SlimMixin)]
    if left:
        raise RuntimeError(f'export_subnet: layers {left[:5]} did not run on the example '
                           f'input of shape {tuple(input_shape)} and stayed slimmable')
    return static


@MODELS.register_module()
def MutualStaticSubnet(model: dict, width: float, input_shape: Sequence[int]):
    """Config entry that builds the static network of one subnet:
    ``model=dict(type='MutualStaticSubnet', model=<the training model cfg>,
    width=0.5, input_shape=(1, 3, 8, 224, 224))``. The checkpoint written by
    ``tools/export_subnet.py`` loads into it strictly."""
    from mmengine.registry import MODELS as ROOT
    # the exported weights replace any initialisation: fetch none
    return export_subnet(ROOT.build(without_pretrained(model)), width, input_shape)
