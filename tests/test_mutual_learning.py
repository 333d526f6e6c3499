"""MultiResolution + MutualLearningHook with real mmengine Runners."""
import copy

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.engine import MutualLearningHook

from .helpers import DET_SCALES, det_train_cfg


def _runner(cfg):
    return Runner.from_cfg(copy.deepcopy(cfg))


def test_mask_rcnn_trains_with_the_hook_and_logs_every_member(tmp_path):
    hook = dict(type='MutualLearningHook', width_range=(0.25, 1.0), num_random=2)
    runner = _runner(det_train_cfg(tmp_path / 'work', tmp_path / 'data', hook=hook))
    runner.train()
    scalars = runner.message_hub.log_scalars
    for member in ('full', 'min', 'rand0', 'rand1'):
        loss = scalars[f'train/{member}.loss'].current()
        assert np.isfinite(loss), member
        assert f'train/{member}.loss_mask' in scalars
    assert scalars['train/min.width'].current() == 0.25
    assert scalars['train/full.width'].current() == 1.0
    assert runner.iter == 2
    # the stock train step is back, the model is at full width
    assert 'train_step' not in runner.model.__dict__
    assert mutual_mm.get_active_config(runner.model) == {'width': 1.0}


def test_slowonly_recognizer_trains_with_kl_and_video_views(tmp_path):
    from .helpers import rec_train_cfg
    hook = dict(type='MutualLearningHook', width_range=(0.63, 1.0), num_random=2)
    runner = _runner(rec_train_cfg(tmp_path / 'work', tmp_path / 'data', hook=hook))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/full.loss_cls'].current())
    for member in ('min', 'rand0', 'rand1'):
        assert np.isfinite(scalars[f'train/{member}.loss_kl'].current())
        assert f'train/{member}.loss_cls' not in scalars  # KL replaces the CE
    assert scalars['train/min.width'].current() == pytest.approx(0.63)
    hook_obj = [h for h in runner.hooks if isinstance(h, MutualLearningHook)][0]
    assert hook_obj.resolved_distill == 'kl'
    assert hook_obj.num_views == 9  # 3 sizes x 3 frame counts
