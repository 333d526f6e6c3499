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




@pytest.fixture(scope='session')
def calibrated_reduced(trained, tmp_path_factory):
    """``trained`` calibrated by tools/calibrate_bn.py for the subnet width 0.5,
    32 px, 2 frames: (cfg, its dumped file, the calibrated checkpoint)."""
    from tools.calibrate_bn import main as calibrate
    cfg, checkpoint, _ = trained
    tmp = tmp_path_factory.mktemp('calibrated_reduced')
    cfg_file = tmp / 'config.py'
    cfg.dump(str(cfg_file))
    calibrated = str(tmp / 'calibrated.pth')
    calibrate([str(cfg_file), checkpoint, '--out', calibrated, '--widths', '0.5',
               '--resolutions', '32', '--frames', '2', '--num-batches', '2'])
    return cfg, str(cfg_file), calibrated
