"""The repairs mutual_mm applies to the pinned stack (mutual_mm.compat)."""
import copy
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import mutual_mm  # noqa: F401  (applies the repairs)
from mutual_mm.compat import mmaction_drn


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300)


# ---------------------------------------------------------------- mmaction drn
def test_mmaction_models_import_after_mutual_mm():
    import mmaction.models  # noqa: F401  (fails on mmaction2 1.2.0 without the repair)
    from mmaction.registry import MODELS
    assert MODELS.get('Recognizer3D') is not None


def test_drn_stub_only_where_the_release_lacks_it():
    spec_root = osp.dirname(__import__('mmaction').__file__)
    shipped = osp.isdir(osp.join(spec_root, 'models', 'localizers', 'drn'))
    stub = sys.modules['mmaction.models.localizers.drn.drn']
    assert getattr(stub, '__mutual_mm_stub__', False) is (not shipped)


def test_drn_config_fails_with_an_explanation():
    from mmengine.registry import init_default_scope
    from mmaction.registry import MODELS
    init_default_scope('mmaction')
    with pytest.raises(ImportError, match='missing from the mmaction2 1.2.0 release'):
        MODELS.build(dict(type='DRN'))


def test_without_the_repair_mmaction_models_is_broken():
    """Guards that the repair is needed at all (and so is tested for real)."""
    proc = _run_python('import mmaction.models')
    assert proc.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in proc.stderr


@pytest.mark.parametrize('first', [
    'import mmaction',
    'import mmaction.registry',  # what mmaction's tools/train.py imports first
    'import mmaction.models',  # an import that already failed once
])
def test_repair_when_mmaction_is_imported_first(first):
    code = (f'try:\n    {first}\nexcept ImportError:\n    pass\n'
            'import mutual_mm\nimport mmaction.models\n'
            'from mmaction.registry import MODELS\n'
            "assert MODELS.get('ResNet3dSlowFast') is not None\nprint('ok')")
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'ok'


# ---------------------------------------------------------- importlib_metadata
def test_importlib_metadata_falls_back_to_stdlib():
    code = '''
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'importlib_metadata':
            raise ImportError('blocked for the test')
sys.meta_path.insert(0, Block())
import mutual_mm
import importlib.metadata
assert sys.modules['importlib_metadata'] is importlib.metadata
from mmaction.utils.dependency import satisfy_requirement
assert satisfy_requirement('mmengine>=0.7.1')
print('ok')
'''
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------- resume (torch>=2.6)
class _ToyDataset(Dataset):

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


def _toy_model():
    from mmengine.model import BaseModel

    class ToyRegressor(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, inputs, labels, mode='tensor'):
            out = self.linear(inputs).squeeze(-1)
            if mode == 'loss':
                return dict(loss=((out - labels)**2).mean())
            return out

    torch.manual_seed(0)  # same initial weights in every run
    return ToyRegressor()


class _Interrupted(Exception):
    pass


def _interrupt_after_epoch(epoch):
    """A hook that kills the run after `epoch` epochs, once its checkpoint is saved."""
    from mmengine.hooks import Hook

    class InterruptHook(Hook):
        priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

        def after_train_epoch(self, runner):
            if runner.epoch == epoch:
                raise _Interrupted

    return InterruptHook()


def _toy_runner(work_dir, max_epochs=3, resume=False, custom_hooks=()):
    from mmengine.runner import Runner
    return Runner(
        model=_toy_model(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_ToyDataset(), batch_size=4, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], gamma=0.1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=7),
        resume=resume,
        custom_hooks=list(custom_hooks),
        default_scope='mmengine',
        experiment_name=f'toy_{len(custom_hooks)}_{resume}')


def test_resume_two_epochs_then_a_third_equals_an_uninterrupted_run(tmp_path):
    assert torch.__version__ >= '2.6'  # the defect only exists there
    first = _toy_runner(tmp_path / 'resumed',
                        custom_hooks=[_interrupt_after_epoch(2)])
    with pytest.raises(_Interrupted):
        first.train()
    ckpt = tmp_path / 'resumed' / 'epoch_2.pth'
    assert osp.isfile(ckpt)
    # a fresh process (as `mim train --resume` is) loads it, and only with the repair
    load = f'import torch; torch.load({str(ckpt)!r}); print("loaded")'
    assert _run_python('import mutual_mm; ' + load).stdout.strip() == 'loaded'
    assert 'HistoryBuffer' in _run_python(load).stderr

    resumed = _toy_runner(tmp_path / 'resumed', resume=True)
    resumed.train()
    assert resumed.epoch == 3
    assert resumed.iter == 3 * 4
    # the LR milestone at epoch 2 took effect in the resumed third epoch
    assert resumed.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.002)]

    straight = _toy_runner(tmp_path / 'straight')
    straight.train()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value,
                                   rtol=0, atol=0)


class _NotAllowed:
    pass


def test_weights_only_stays_on_for_other_classes(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _NotAllowed()}, path)
    with pytest.raises(pickle.UnpicklingError, match='_NotAllowed'):
        torch.load(path)
    from mmengine.runner import load_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(nn.Linear(1, 1), str(path))


class _GetattrPayload:
    """Pickles as getattr(HistoryBuffer, '__init__'): not a statistics method."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    ok = tmp_path / 'ok.pth'
    torch.save({'buffer': buffer}, ok)
    assert torch.load(ok)['buffer'].mean() == 1.5

    bad = tmp_path / 'bad.pth'
    torch.save({'payload': _GetattrPayload()}, bad)
    with pytest.raises(pickle.UnpicklingError, match="'__init__'"):
        torch.load(bad)
