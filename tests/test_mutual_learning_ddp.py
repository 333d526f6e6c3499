"""Under DDP the hooked iteration all-reduces gradients once (2 gloo processes)."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

HOOK = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2)
MAX_ITERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, tmp_dir, with_hook):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
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
    # mmengine's own pytorch launcher calls torch.cuda.set_device; on the CPU the
    # process group is created here and the Runner finds it initialised
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world_size)
    cfg.launcher = 'pytorch'
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False)  # CPU: no device ids
    runner = Runner.from_cfg(cfg)
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
