"""The checkpoint's record of what was trained (TrainedSpace) is the one source
for deployment, and stays true across a resume: a resume with other widths is
refused, a config narrower than the record does not shrink what the deploy
tools list, and a checkpoint without a record says the config is read."""
import copy
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import trained_subnets
from mutual_mm.engine import MutualLearningHook, TrainedSpace
from mutual_mm.engine.trained_space import META_KEY, check_trained

from .helpers import rec_train_cfg

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HOOK = dict(type='MutualLearningHook', width_range=(0.5, 1.0), width_step=0.25,
            num_random=1)
SCALES, FRAMES = (48, 32), (4, 2)


def _cfg(tmp, work, max_iters=2, **hook_changes):
    hook = dict(HOOK, **hook_changes)
    return rec_train_cfg(tmp / work, tmp / 'data', scales=SCALES, frames=FRAMES,
                         hook=hook, max_iters=max_iters)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two iterations of MutualNet training; its work_dir and checkpoint."""
    tmp = tmp_path_factory.mktemp('trained_record')
    Runner.from_cfg(_cfg(tmp, 'work')).train()
    return tmp, str(tmp / 'work' / 'iter_2.pth')


def _record(path):
    return TrainedSpace.from_checkpoint(torch.load(path, weights_only=False))


def test_the_record_is_what_the_run_trained(trained):
    _, checkpoint = trained
    assert _record(checkpoint) == TrainedSpace(
        width_range=[0.5, 1.0], width_step=0.25, scales=list(SCALES),
        frames=list(FRAMES), distill='kl')


def test_a_resume_with_other_widths_is_refused_naming_both(trained):
    tmp, checkpoint = trained
    work = tmp / 'resumed'
    changed = _cfg(tmp, 'resumed', max_iters=3, width_range=(0.25, 1.0))
    changed.update(load_from=checkpoint, resume=True)
    with pytest.raises(ValueError, match=(
            r'resuming a checkpoint trained on other settings \(width_range '
            r'\[0\.5, 1\.0\] vs \[0\.25, 1\.0\]: the checkpoint\'s record vs this '
            r'run\'s\).*load_from=\.\.\., resume=False')):
        Runner.from_cfg(changed).train()
    assert not glob.glob(str(work / 'iter_3.pth'))  # nothing trained on them

    # num_random is no part of the record: changing it keeps the record true
    more_random = _cfg(tmp, 'resumed', max_iters=3, num_random=2)
    more_random.update(load_from=checkpoint, resume=True)
    runner = Runner.from_cfg(more_random)
    runner.train()
    assert runner.iter == 3
    assert _record(work / 'iter_3.pth') == _record(checkpoint)


def test_a_new_run_from_the_weights_records_its_own_widths(trained):
    tmp, checkpoint = trained
    finetune = _cfg(tmp, 'finetune', max_iters=1, width_range=(0.75, 1.0))
    finetune.load_from = checkpoint
    Runner.from_cfg(finetune).train()
    assert _record(tmp / 'finetune' / 'iter_1.pth').width_range == [0.75, 1.0]


def test_deploy_lists_the_record_not_a_narrower_config(trained):
    tmp, checkpoint = trained
    narrower = _cfg(tmp, 'narrow', width_range=(0.75, 1.0))
    narrower.train_dataloader.dataset.pipeline[-1]['scales'] = [48]
    subnets = trained_subnets(narrower, checkpoint=checkpoint)
    assert sorted({s.width for s in subnets}) == [0.5, 0.75, 1.0]
    assert {(s.scale, s.frames) for s in subnets} == \
        {(s, f) for s in SCALES for f in FRAMES}
    # every listed subnet passes the check the tools make
    assert check_trained(subnets, _record(checkpoint)) == {}
    # the config alone (no checkpoint) would have listed a subset
    assert len(trained_subnets(narrower)) < len(subnets)


def test_a_checkpoint_without_a_record_says_the_config_is_read(trained):
    """tools/calibrate_bn.py as a user runs it: a warning naming the checkpoint,
    then the refusal of widths below 1 (the rule for a record-less checkpoint)."""
    tmp, checkpoint = trained
    plain = torch.load(checkpoint, weights_only=False)
    del plain['meta'][META_KEY]
    bare = str(tmp / 'no_record.pth')
    torch.save(plain, bare)
    config = str(tmp / 'config.py')
    _cfg(tmp, 'calibrate').dump(config)
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'calibrate_bn.py'), config, bare,
         '--out', str(tmp / 'calibrated.pth'), '--num-batches', '1'],
        cwd=tmp, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (f'checkpoint {bare} holds no record of what it was trained on (meta '
            f"'{META_KEY}'") in output
    assert 'so the subnets are read from the config' in output
    assert 'w0.5_s48_f4' in output and 'width below 1 with no record' in output
    assert '--allow-untrained' in output


def test_checkpoints_written_before_the_split_still_resume_their_sampler():
    class LoadingRunner:  # mmengine's Runner, as the hooks see it on a load
        logger = None
        _resume = False

    hook = MutualLearningHook()
    hook.rng.seed(3)
    legacy = {'mutual_learning': dict(rng_state=hook.rng.getstate())}
    expected = [hook.rng.random() for _ in range(3)]
    hook.after_load_checkpoint(LoadingRunner(), copy.deepcopy(legacy))
    assert [hook.rng.random() for _ in range(3)] == expected
