"""The hooked iteration under DDP (2 gloo processes): one gradient all-reduce
per iteration, one cohort on every rank, and a resume that reproduces the
uninterrupted run."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

HOOK = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2)
MAX_ITERS = 2
RESUME_ITERS = 4  # resumed from the checkpoint at RESUME_ITERS // 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _join_process_group(rank, world_size, port) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    # mmengine's own pytorch launcher calls torch.cuda.set_device; on the CPU the
    # process group is created here and the Runner finds it initialised
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world_size)


def _on_cpu_processes(cfg):
    cfg.launcher = 'pytorch'
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False)  # CPU: no device ids
    return cfg


def _worker(rank, world_size, port, tmp_dir, with_hook):
    _join_process_group(rank, world_size, port)
    from mmengine.runner import Runner
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    import mutual_mm  # noqa: F401
    from tests.helpers import rec_train_cfg
    tag = 'hooked' if with_hook else 'stock'
    cfg = rec_train_cfg(os.path.join(tmp_dir, f'{tag}_work'),
                        os.path.join(tmp_dir, f'data{rank}'),
                        hook=HOOK if with_hook else None, max_iters=MAX_ITERS,
                        batch_size=1)
    if not with_hook:  # the stock pipeline: the full view only
        pipeline = cfg.train_dataloader.dataset.pipeline
        tail = pipeline[-1]['transforms']
        tail[0]['scale'] = (48, 48)
        pipeline[-1:] = tail
    runner = Runner.from_cfg(_on_cpu_processes(cfg))
    calls = []

    def counting_allreduce(state, bucket):
        calls.append(bucket.index())
        return default_hooks.allreduce_hook(state, bucket)

    runner.model.register_comm_hook(None, counting_allreduce)
    runner.train()
    with open(os.path.join(tmp_dir, f'{tag}_{rank}.json'), 'w') as f:
        json.dump(dict(calls=calls, members=sorted(
            k for k in runner.message_hub.log_scalars if k.endswith('.loss'))), f)


def _run(tmp_path, with_hook):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), with_hook), nprocs=2,
             join=True)
    tag = 'hooked' if with_hook else 'stock'
    return [json.load(open(tmp_path / f'{tag}_{r}.json')) for r in range(2)]


@pytest.mark.skipif(not torch.distributed.is_available(), reason='no torch.distributed')
def test_one_gradient_allreduce_per_iteration(tmp_path):
    stock = _run(tmp_path, with_hook=False)
    hooked = _run(tmp_path, with_hook=True)
    # DDP reduces its buckets once per synchronised backward (it re-buckets
    # after the first iteration, hence the exact sequence is compared)
    assert len(stock[0]['calls']) >= MAX_ITERS
    for rank in range(2):
        # the 4-member hooked step reduces exactly as the stock step: three
        # members ran under no_sync, the last one all-reduced the accumulated sum
        assert hooked[rank]['calls'] == stock[rank]['calls']
        assert hooked[rank]['members'] == [
            'train/full.loss', 'train/min.loss', 'train/rand0.loss', 'train/rand1.loss']


# ------------------------------------------------- diff_rank_seed and resume
def _resume_worker(rank, world_size, port, tmp_dir):
    _join_process_group(rank, world_size, port)
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import mutual_mm  # noqa: F401
    from mutual_mm.engine.random_states import capture_random_states
    from tests.helpers import rec_train_cfg

    class Record(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.log = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.log.append({k: float(v) for k, v in outputs.items()})

    def train(tag, resume_from=None):
        # the train pipeline samples frames at random (numpy) and the sampler
        # shuffles: each rank draws its own numbers from its own seed
        cfg = rec_train_cfg(os.path.join(tmp_dir, tag),
                            os.path.join(tmp_dir, f'data{rank}'), hook=HOOK,
                            max_iters=RESUME_ITERS, batch_size=1,
                            checkpoint_interval=RESUME_ITERS // 2)
        cfg.randomness = dict(seed=0, diff_rank_seed=True)
        if resume_from:
            cfg.resume, cfg.load_from = True, resume_from
        runner = Runner.from_cfg(_on_cpu_processes(cfg))
        record = Record()
        runner.register_custom_hooks([record])
        runner.train()
        torch.save(capture_random_states(),
                   os.path.join(tmp_dir, f'{tag}_states{rank}.pt'))
        return record.log

    straight = train('straight')
    # a run interrupted at RESUME_ITERS // 2 would have written the same file
    resumed = train('resumed', os.path.join(tmp_dir, 'straight',
                                            f'iter_{RESUME_ITERS // 2}.pth'))
    with open(os.path.join(tmp_dir, f'logs{rank}.json'), 'w') as f:
        json.dump(dict(straight=straight, resumed=resumed), f)


def _cohort(log):
    """The members' widths and views (index, input size, frames) per iteration."""
    keys = ('.width', '.view', '.res', '.frames')
    return [{k: v for k, v in it.items() if k.endswith(keys)} for it in log]


@pytest.mark.skipif(not torch.distributed.is_available(), reason='no torch.distributed')
def test_diff_rank_seed_one_cohort_on_every_rank_and_exact_resume(tmp_path):
    mp.spawn(_resume_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    logs = [json.load(open(tmp_path / f'logs{rank}.json')) for rank in range(2)]
    straight, resumed = ([log[tag] for log in logs] for tag in ('straight', 'resumed'))
    assert len(straight[0]) == RESUME_ITERS
    assert len(resumed[0]) == RESUME_ITERS // 2
    # one cohort per iteration, whatever seed each rank's own draws start from
    assert _cohort(straight[0]) == _cohort(straight[1])
    assert len({it['rand0.width'] for it in straight[0]}) > 1  # it did vary
    for rank in range(2):  # each rank continued its own streams after the resume
        assert resumed[rank] == straight[rank][RESUME_ITERS // 2:], f'rank {rank}'
        states = [torch.load(tmp_path / f'{tag}_states{rank}.pt', weights_only=False)
                  for tag in ('straight', 'resumed')]
        assert states[0]['python'] == states[1]['python'], f'rank {rank}'
        assert states[0]['numpy'] == states[1]['numpy'], f'rank {rank}'
        assert torch.equal(states[0]['torch'], states[1]['torch']), f'rank {rank}'
    final = [torch.load(tmp_path / tag / f'iter_{RESUME_ITERS}.pth', weights_only=False)
             ['state_dict'] for tag in ('straight', 'resumed')]
    differ = [k for k in final[0] if not torch.equal(final[0][k], final[1][k])]
    assert not differ, f'{len(differ)} of {len(final[0])} tensors differ: {differ[:3]}'


class _Warnings(list):
    warning = list.append


def test_an_older_or_other_sized_checkpoint_entry_resumes():
    """One process: an older checkpoint's single dict is its states, silently;
    states saved by 2 processes give rank 0's, with a warning naming both sizes."""
    from mutual_mm.engine.random_states import RankStates, capture_random_states
    states, other = capture_random_states(), capture_random_states()
    warnings = _Warnings()
    assert RankStates.own(states, warnings) is states
    assert not warnings
    assert RankStates.own([states, other], warnings) is states
    assert len(warnings) == 1
    assert 'states of 2 processes' in warnings[0] and 'has 1 process' in warnings[0]
