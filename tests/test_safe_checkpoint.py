"""SafeCheckpointHook: a write that fails (a full disk, a refusing hook) leaves
the previous checkpoint loadable, ``last_checkpoint`` naming it and no temporary
file, where mmengine's CheckpointHook (shown first, same run) leaves no loadable
checkpoint at all; otherwise it keeps what CheckpointHook keeps. Real Runners
on a small regression model (0.5 MiB checkpoints) and a real tmpfs when this
machine may mount one."""
import errno
import os
import os.path as osp
import shutil
import stat
import subprocess
import uuid

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import mutual_mm  # noqa: F401
from mutual_mm.engine import SafeCheckpointHook
from mutual_mm.registry import HOOKS
from mutual_mm.utils import load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WIDTH = 256  # weights + SGD momentum: a 0.5 MiB checkpoint


class ToyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(WIDTH, WIDTH)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=(out - targets).pow(2).mean())
        return out


class ToyData(Dataset):
    def __init__(self, size=8):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, WIDTH, generator=g)
        self.y = torch.randn(size, WIDTH, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


class ScriptedMetric(BaseMetric):
    """Reports the next of ``scores`` as ``acc`` at each validation."""

    def __init__(self, scores):
        super().__init__()
        self.scores = list(scores)

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return dict(acc=self.scores.pop(0))


class FailOnSave(Hook):
    """On the ``nth`` save, runs ``action(work_dir)`` inside
    ``runner.save_checkpoint``, before the file is written (where
    MutualLearningHook refuses non-finite weights)."""

    def __init__(self, action, nth=2):
        self.action, self.nth, self.count = action, nth, 0

    def before_save_checkpoint(self, runner, checkpoint):
        self.count += 1
        if self.count == self.nth:
            self.action(runner.work_dir)


class StartIter(Hook):
    def before_train(self, runner):
        self.iter = runner.iter  # after load_or_resume


def _loader(infinite=False):
    # infinite for iteration-based training: mmengine sleeps 2 s at each
    # restart of a finite one
    sampler = 'InfiniteSampler' if infinite else 'DefaultSampler'
    return dict(dataset=ToyData(), batch_size=4, num_workers=0,
                sampler=dict(type=sampler, shuffle=False),
                collate_fn=dict(type='default_collate'))


def make_runner(work_dir, hook='SafeCheckpointHook', length=3, by_epoch=False,
                resume=False, hooks=(), scores=None, **checkpoint):
    """A Runner saving every iteration (or epoch) for ``length`` of them,
    validating with ``scores`` when given."""
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=length, val_interval=1)
    else:
        train_cfg = dict(by_epoch=False, max_iters=length, val_interval=1)
    val = {}
    if scores is not None:
        val = dict(val_dataloader=_loader(), val_cfg=dict(),
                   val_evaluator=Evaluator([ScriptedMetric(scores)]))
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=ToyRegressor(), work_dir=str(work_dir),
        train_dataloader=_loader(infinite=not by_epoch),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=dict(type=hook, interval=1, by_epoch=by_epoch,
                                           **checkpoint)),
        custom_hooks=list(hooks), randomness=dict(seed=0), resume=resume,
        default_scope='mmengine', experiment_name=f'toy_{uuid.uuid4().hex[:8]}', **val)


def loadable(path):
    try:
        torch.load(path, map_location='cpu', weights_only=False)
        return True
    except Exception:
        return False


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read()


def checkpoints(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))


def train_until_error(work_dir, hook, action, error=OSError):
    runner = make_runner(work_dir, hook, max_keep_ckpts=1, hooks=[FailOnSave(action)])
    with pytest.raises(error) as info:
        runner.train()
    return info.value


def assert_nothing_loadable(work_dir):
    """The stock outcome: iter_1.pth deleted before iter_2.pth failed, and
    last_checkpoint names the deleted file: --resume cannot resume."""
    assert last_checkpoint(work_dir) == osp.join(work_dir, 'iter_1.pth')
    assert not osp.exists(osp.join(work_dir, 'iter_1.pth'))
    assert not any(loadable(osp.join(work_dir, n)) for n in checkpoints(work_dir))


def assert_previous_kept_and_resumable(work_dir, err):
    work_dir = str(work_dir)
    previous = osp.join(work_dir, 'iter_1.pth')
    # the file it failed to write, where, how much room is left, what is intact
    assert osp.join(work_dir, 'iter_2.pth') in str(err)
    assert 'MiB free' in str(err) and f'{previous} is intact' in str(err)
    assert checkpoints(work_dir) == ['iter_1.pth']  # no partial iter_2.pth
    assert not [n for n in os.listdir(work_dir) if '.tmp' in n]
    assert last_checkpoint(work_dir) == previous
    assert torch.load(previous, weights_only=False)['meta']['iter'] == 1
    start = StartIter()
    make_runner(work_dir, length=3, resume=True, max_keep_ckpts=1, hooks=[start]).train()
    assert start.iter == 1
    assert checkpoints(work_dir) == ['iter_3.pth']
    assert last_checkpoint(work_dir) == osp.join(work_dir, 'iter_3.pth')


# ------------------------------------------------------ a full disk (tmpfs)
@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (room for ~7 checkpoints) as the work_dir."""
    folder = tmp_path / 'disk'
    folder.mkdir()
    mount = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(folder)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): '
                    f'{mount.stderr.strip()}; the monkeypatched tests cover the same')
    yield folder
    # lazily: the runners' loggers still hold their log files open there
    subprocess.run(['umount', '-l', str(folder)], check=True)


def fill_disk(work_dir):
    """Another writer takes the disk's room but 8 KiB (less than a checkpoint)."""
    free = shutil.disk_usage(work_dir).free
    with open(osp.join(work_dir, 'filler'), 'wb') as f:
        f.write(bytes(free - 8192))


def test_stock_hook_on_a_full_disk_leaves_no_loadable_checkpoint(small_disk):
    err = train_until_error(small_disk, 'CheckpointHook', fill_disk)
    assert err.errno == errno.ENOSPC and 'iter_2.pth' not in str(err)  # no file named
    assert_nothing_loadable(str(small_disk))
    assert osp.getsize(small_disk / 'iter_2.pth') < 2 ** 19  # a truncated one


def test_full_disk_keeps_the_previous_checkpoint(small_disk):
    err = train_until_error(small_disk, 'SafeCheckpointHook', fill_disk)
    assert err.errno == errno.ENOSPC
    os.remove(small_disk / 'filler')  # as the error says: free space, then resume
    assert_previous_kept_and_resumable(small_disk, err)


# ------------------------------------ the same failure, monkeypatched
@pytest.fixture
def second_save_fails(monkeypatch):
    """From the 2nd save on, torch.save fails as on a full disk."""
    def fail(work_dir):
        def save(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(torch, 'save', save)
    return fail


def test_stock_hook_loses_every_checkpoint_when_a_write_fails(tmp_path, second_save_fails):
    train_until_error(tmp_path, 'CheckpointHook', second_save_fails)
    assert_nothing_loadable(str(tmp_path))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, second_save_fails, monkeypatch):
    err = train_until_error(tmp_path, 'SafeCheckpointHook', second_save_fails)
    monkeypatch.undo()
    assert_previous_kept_and_resumable(tmp_path, err)


def test_a_refused_save_replaces_nothing(tmp_path):
    """A hook refusing the checkpoint in before_save_checkpoint, as
    MutualLearningHook does for non-finite weights."""
    def refuse(work_dir):
        raise FloatingPointError('not finite')
    train_until_error(tmp_path, 'SafeCheckpointHook', refuse, FloatingPointError)
    assert checkpoints(tmp_path) == ['iter_1.pth']
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_1.pth')
    assert not [n for n in os.listdir(tmp_path) if '.tmp' in n]


# --------------------------------------------- otherwise as CheckpointHook
def outcome(work_dir):
    """What a run leaves, with its work_dir taken out of the paths."""
    work_dir = str(work_dir)
    last = last_checkpoint(work_dir)
    ckpt = torch.load(last, weights_only=False)
    info = {k: v.replace(work_dir, '') if isinstance(v, str) else v
            for k, v in ckpt['message_hub']['runtime_info'].items()
            if k in ('last_ckpt', 'keep_ckpt_ids', 'best_ckpt', 'best_score')}
    modes = {n: stat.S_IMODE(os.stat(osp.join(work_dir, n)).st_mode)
             for n in checkpoints(work_dir) + ['last_checkpoint']}
    return dict(files=checkpoints(work_dir), last=last.replace(work_dir, ''),
                info=info, meta=(ckpt['meta']['epoch'], ckpt['meta']['iter']),
                modes=modes, optimizer='optimizer' in ckpt), ckpt['state_dict']


@pytest.mark.parametrize('by_epoch,save_best', [(False, 'auto'), (True, 'acc')],
                         ids=['by_iter-auto', 'by_epoch-acc'])
def test_normal_runs_keep_what_checkpoint_hook_keeps(tmp_path, by_epoch, save_best):
    scores = [0.2, 0.5, 0.4, 0.7, 0.6, 0.65, 0.9]
    results = {}
    for hook in ('CheckpointHook', 'SafeCheckpointHook'):
        work_dir = tmp_path / hook
        make_runner(work_dir, hook, length=5, by_epoch=by_epoch, scores=scores[:5],
                    max_keep_ckpts=2, save_best=save_best).train()
        first = outcome(work_dir)
        make_runner(work_dir, hook, length=7, by_epoch=by_epoch, scores=scores[5:],
                    resume=True, max_keep_ckpts=2, save_best=save_best).train()
        results[hook] = first, outcome(work_dir)
    unit = 'epoch' if by_epoch else 'iter'
    for (stock, stock_state), (safe, safe_state) in zip(*results.values()):
        assert safe == stock
        assert stock_state.keys() == safe_state.keys()
        assert all(torch.equal(stock_state[k], safe_state[k]) for k in stock_state)
    (first, _), (resumed, _) = results['SafeCheckpointHook']
    assert first['files'] == [f'best_acc_{unit}_4.pth', f'{unit}_4.pth', f'{unit}_5.pth']
    assert first['info']['best_ckpt'] == f'/best_acc_{unit}_4.pth'
    assert resumed['files'] == [f'best_acc_{unit}_7.pth', f'{unit}_6.pth', f'{unit}_7.pth']
    assert resumed['last'] == f'/{unit}_7.pth'
    assert resumed['info']['keep_ckpt_ids'] == [6, 7]


# ------------------------------------------------------- provided configs
SAFE_CONFIGS = [
    ('demo/slowonly_slim-r18_mutualnet_motion-demo.py', 1),
    ('demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py', -1),
    ('charades/slowonly_slim-r50_8x8x1_charades-ft.py', 3),
    ('charades/slowfast_slim-r50_4x16x1_charades-ft.py', 3),
    ('kinetics/x3d-m_slim_mutualnet-16x5x1-300e_kinetics400-rgb.py', 3),
    ('kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py', 3),
    ('kinetics/slowfast_slim-r50_mutualnet-4x16x1-256e_kinetics400-rgb.py', 3),
    ('kinetics/tsn_slim-r50_mutualnet-1x1x3-100e_kinetics400-rgb.py', 3),
    ('pretrain/mbv1_mutual_imagenet.py', 3),
    ('pretrain/mbv2_mutual_imagenet.py', 3),
    ('pretrain/r50_mutual_imagenet.py', 3),
    ('pretrain/vgg16_mutual_imagenet.py', 3),
    ('pretrain/usnet_mbv1_imagenet.py', 3),
]


@pytest.mark.parametrize('name,max_keep', SAFE_CONFIGS, ids=[c[0] for c in SAFE_CONFIGS])
def test_configs_that_keep_few_checkpoints_build_the_safe_hook(name, max_keep):
    cfg = load_config(osp.join(ROOT, 'configs', name))  # its default scope
    hook = HOOKS.build(cfg.default_hooks.checkpoint.copy())
    assert type(hook) is SafeCheckpointHook
    assert hook.max_keep_ckpts == max_keep


def test_a_backend_it_cannot_replace_on_falls_back_to_mmengine(tmp_path):
    """The deprecated file_client_args (like a remote backend_args) goes through
    mmengine's own saving, and the log says so."""
    runner = make_runner(tmp_path, length=2, max_keep_ckpts=1,
                         file_client_args=dict(backend='disk'))
    runner.train()
    assert checkpoints(tmp_path) == ['iter_2.pth']
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')
    with open(runner.logger.log_file) as f:
        assert "saved as mmengine's CheckpointHook saves them" in f.read()
