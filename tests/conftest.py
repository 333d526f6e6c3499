"""Fixtures shared by several test modules."""
import copy

import mutual_mm  # noqa: F401  (first: repairs the stack before any mmaction import)

import pytest
from mmengine.runner import Runner


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """A SlowOnly MutualNet trained for 2 iterations, with a test split."""
    from .helpers import rec_train_cfg
    tmp = tmp_path_factory.mktemp('calib')
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=1)
    cfg = rec_train_cfg(tmp / 'work', tmp / 'data', hook=hook, with_test=True)
    Runner.from_cfg(copy.deepcopy(cfg)).train()
    return cfg, str(tmp / 'work' / 'iter_2.pth'), tmp


