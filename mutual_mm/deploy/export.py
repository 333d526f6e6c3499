"""Static export of one subnet: weights sliced to their reduced shapes, and
the files ``tools/export_subnet.py`` writes (weights and a config that builds
them)."""
import copy
import os
import os.path as osp
from typing import NamedTuple, Sequence

import torch
from torch import nn

from ..fileio import atomic_path, save_torch
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


#: hooks of a MutualNet config that have no place in a static subnet's config
TRAIN_ONLY_HOOKS = ('MutualLearningHook', 'CalibratedSubnetHook')


class ExportedSubnet(NamedTuple):
    """What :func:`export_subnet_files` wrote and built."""
    weights: str  #: DIR/subnet.pth
    config: str  #: DIR/subnet_config.py
    static: nn.Module  #: the static model (eval mode)
    examples: list  #: (inputs, data_samples) of each input of the first test batch
    cfg: object  #: the written config (the test pipeline at the subnet)


def export_subnet_files(cfg, checkpoint: str, subnet, out_dir: str,
                        allow_untrained: bool = False) -> ExportedSubnet:
    """Write ``out_dir/subnet.pth`` (the static subnet of ``checkpoint`` at
    ``subnet``, its calibrated BN statistics in place) and
    ``out_dir/subnet_config.py``, which builds it (``MutualStaticSubnet``) with
    the test pipeline at the subnet's input size (SlowFast: the backbone's
    ``slow_input``) and its proposals in the detector's ``test_cfg``."""
    from mmengine.runner import Runner

    from ..engine.trained_space import TrainedSpace, check_trained
    from .apply_subnet import apply_subnet, apply_subnet_to_cfg
    from .complexity import preprocessed_examples
    from .calibrated_subnet_hook import CALIBRATION_KEY, apply_calibrated_stats
    from .checked_checkpoint import load_checked_checkpoint
    os.makedirs(out_dir, exist_ok=True)
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = osp.join(out_dir, 'work')
    cfg.load_from = None
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    ckpt = load_checked_checkpoint(runner, checkpoint)
    check_trained([subnet], TrainedSpace.from_checkpoint(ckpt), allow_untrained)
    apply_calibrated_stats(runner.model, ckpt.get(CALIBRATION_KEY), subnet, checkpoint)
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    apply_subnet(runner.model, loader.dataset, subnet)
    model = unwrap_model(runner.model).eval()
    examples = preprocessed_examples(model, next(iter(loader)))
    input_shape = tuple(examples[0][0].shape)
    static = export_subnet(model, subnet.width, input_shape).eval()

    weights = osp.join(out_dir, 'subnet.pth')
    save_torch(dict(state_dict=static.state_dict(),
                    meta=dict(subnet=subnet.as_dict(), source=checkpoint)), weights)
    apply_subnet_to_cfg(cfg, subnet)  # the test pipeline, SlowFast's slow_input, proposals
    cfg.model = dict(type='MutualStaticSubnet', model=cfg.model, width=subnet.width,
                     input_shape=list(input_shape))
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                        if h.get('type') not in TRAIN_ONLY_HOOKS]
    cfg.load_from = weights
    cfg.pop('work_dir', None)
    config_path = osp.join(out_dir, 'subnet_config.py')
    with atomic_path(config_path) as tmp:
        cfg.dump(tmp)
    return ExportedSubnet(weights, config_path, static, examples, cfg)
