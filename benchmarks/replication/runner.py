"""Train and evaluate one run of the study, resumably; run many in parallel.

Every run goes through the package's own parts: ``MutualImageClassifier`` in a
real mmengine ``Runner`` with ``MutualLearningHook`` and ``MultiResolution``,
then ``build_lookup_table`` (BN calibration per configuration, the
``CalibratedSubnetHook`` test loop, mmengine's ``FlopAnalyzer``).

What survives an interruption: a run's result is one JSON file in the results
folder, written when its evaluation is done (a run with a result is never run
again); while it trains, a checkpoint every ``CHECKPOINT_EVERY`` steps in its
work folder, from which the next invocation resumes (mmengine ``resume``).
"""
import copy
import datetime
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mutual_mm
from mutual_mm.deploy import Subnet, build_lookup_table
from mmengine.model import ImgDataPreprocessor
from mutual_mm.models import SlimMobileNetV1
from mutual_mm.registry import MODELS

from .plan import INET_POINTS, RunSpec

FMNIST_DIR = '/usr/share/datasets/fashion-mnist'
FMNIST_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
                't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
# Fashion-MNIST pixel mean / std (0.2860, 0.3530 of 255), grey in all 3 channels.
MEAN, STD = [72.94] * 3, [90.0] * 3
METRIC = 'accuracy/top1'
CHECKPOINT_EVERY = 500


@dataclass(frozen=True)
class Settings:
    """What every run of one study shares (the recipe beyond :class:`RunSpec`)."""
    data_root: str = FMNIST_DIR
    results_dir: str = 'docs/replication/runs'
    work_dir: str = 'work_dirs/replication'
    widen_factor: float = 0.5
    stem_stride: int = 1
    full_resolution: int = 32
    resolutions: tuple = (32, 28, 24, 20)
    calib_batches: int = 10
    test_batch_size: int = 500
    train_samples: int = 0   # 0: all 60,000 (smaller only for tests)
    test_samples: int = 0    # 0: all 10,000
    weight_decay: float = 1e-4


def check_data(root: str) -> None:
    """Fail with the instruction to get Fashion-MNIST when it is absent."""
    missing = [f for f in FMNIST_FILES if not osp.exists(osp.join(root, f))
               and not osp.exists(osp.join(root, f[:-3]))]
    if missing:
        raise SystemExit(
            f'Fashion-MNIST is missing from {root!r} ({", ".join(missing)}). Install it '
            'with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu: puts the '
            f'idx files in {FMNIST_DIR}), or give --data-root a folder holding them.')


# ------------------------------------------------------------------ configs
@MODELS.register_module(force=True)
class CifarSlimMobileNetV1(SlimMobileNetV1):
    """SlimMobileNetV1 with a stride-``stem_stride`` stem (CIFAR-style), all else
    (layers, keys, slimming) the package's.

    Why: with ImageNet strides (x32) a 32 px input ends at 1x1 and the widest
    layers run at 2x2 and 1x1 for every input from 20 to 32 px, so resolution
    barely changes the cost (measured: 2.48 vs 3.15 MFLOPs at 20 vs 32 px,
    width 1.0) and the width x resolution trade-off under study vanishes. A
    stride-1 stem (x16) gives 32 px inputs a 2x2 last map (as 224 px gives 7x7 on
    ImageNet) and 20 px 0.55x the FLOPs of 32 px.
    """

    def __init__(self, stem_stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.stem.conv.stride = (stem_stride, stem_stride)


@MODELS.register_module(force=True)
class ChannelsLastImgDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` whose batch comes out channels-last.

    Why: on the CPU, oneDNN runs these small convolutions and their BN layers
    1.3-1.7x faster on NHWC inputs (measured: one forward/backward of batch 64
    at 1x-32 / 0.5x-24 / 0.25x-20 took 0.161 / 0.059 / 0.031 s contiguous vs
    0.125 / 0.035 / 0.020 s channels-last, one thread). The numbers computed
    are the same up to float rounding.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        data['inputs'] = data['inputs'].contiguous(memory_format=torch.channels_last)
        return data


def _model_cfg(s: Settings) -> dict:
    channels = mutual_mm.ops.make_divisible(1024 * s.widen_factor, 8)
    return dict(
        type='MutualImageClassifier',
        backbone=dict(type='CifarSlimMobileNetV1', stem_stride=s.stem_stride,
                      widen_factor=s.widen_factor, out_indices=(4,)),
        head=dict(type='MutualLinearClsHead', num_classes=10, in_channels=channels),
        data_preprocessor=dict(type='ChannelsLastImgDataPreprocessor', mean=MEAN,
                               std=STD))


def _dataset_cfg(s: Settings, split: str, pipeline: list) -> dict:
    samples = s.train_samples if split == 'train' else s.test_samples
    return dict(type='MNISTIdxDataset', data_root=s.data_root, split=split,
                indices=samples or None, pipeline=pipeline, test_mode=split == 'test')


def _train_pipeline_and_hook(spec: RunSpec, s: Settings):
    """The only two things that differ between the methods."""
    flip = dict(type='RandomFlip', prob=0.5, direction='horizontal')
    pack = dict(type='PackClsInputs')
    if spec.method == 'mutualnet':
        return ([flip, dict(type='MultiResolution', scales=list(s.resolutions),
                            transforms=[dict(type='Resize', keep_ratio=False), pack])],
                dict(type='MutualLearningHook', width_range=tuple(spec.width_range),
                     num_random=spec.num_random, distill=spec.distill))
    if spec.method == 'usnet':
        return ([flip, dict(type='Resize', scale=s.full_resolution, keep_ratio=False), pack],
                dict(type='MutualLearningHook', width_range=tuple(spec.width_range),
                     num_random=spec.num_random, distill=spec.distill,
                     multi_resolution=False))
    width, res = spec.point
    pipeline = [flip, dict(type='Resize', scale=res, keep_ratio=False), pack]
    if spec.method == 'plain':  # the stock train step: no hook at all
        return pipeline, None
    # I-Net: the network is exactly the width-w slice, trained alone
    return pipeline, dict(type='MutualLearningHook', width_range=(width, width),
                          num_random=0, multi_resolution=False)


def run_cfg(spec: RunSpec, s: Settings) -> Config:
    """The mmengine config of one run; identical for every method but the train
    pipeline and the hook."""
    pipeline, hook = _train_pipeline_and_hook(spec, s)
    total = spec.iters
    warmup = max(1, total // 20) if spec.warmup else 0
    schedulers = [dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=total,
                       T_max=total - warmup, eta_min=0.0)]
    if warmup:
        schedulers.insert(0, dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                                  begin=0, end=warmup))
    test_pipeline = [dict(type='Resize', scale=s.full_resolution, keep_ratio=False),
                     dict(type='PackClsInputs')]
    return Config(dict(
        default_scope='mmengine',
        model=_model_cfg(s),
        work_dir=osp.join(s.work_dir, spec.name),
        experiment_name=spec.name,
        train_dataloader=dict(
            batch_size=spec.batch_size, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True), drop_last=True,
            dataset=_dataset_cfg(s, 'train', pipeline)),
        # iteration-based so every method gets exactly `total` optimizer steps
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=total, val_interval=10**9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=spec.lr, momentum=0.9,
                                          nesterov=True, weight_decay=s.weight_decay)),
        param_scheduler=schedulers,
        test_dataloader=dict(
            batch_size=s.test_batch_size, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=_dataset_cfg(s, 'test', test_pipeline)),
        test_evaluator=dict(type='TopKAccuracy', topk=(1,)),
        test_cfg=dict(type='TestLoop'),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=100),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=min(total, CHECKPOINT_EVERY), max_keep_ckpts=1,
                            save_last=True),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[hook] if hook else [],
        randomness=dict(seed=spec.seed),
        log_processor=dict(by_epoch=False),
        log_level='WARNING',
        visualizer=dict(type='Visualizer', vis_backends=[]),
        resume=osp.exists(osp.join(s.work_dir, spec.name, 'last_checkpoint')),
    ))


# ---------------------------------------------------------------- one run
def result_path(spec: RunSpec, s: Settings) -> str:
    return osp.join(s.results_dir, f'{spec.name}.json')


def load_result(spec: RunSpec, s: Settings) -> Optional[dict]:
    path = result_path(spec, s)
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, data: dict) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)  # atomic: a killed run never leaves half a result


def _member_losses(runner, window: int = 200) -> Dict[str, float]:
    """Mean of each logged loss over the last ``window`` logged values."""
    out = {}
    for key, buf in runner.message_hub.log_scalars.items():
        if key.startswith('train/') and 'loss' in key:
            out[key[len('train/'):]] = float(buf.mean(window))
    return out


def _checkpoint_iteration(work_dir: str) -> int:
    """The iteration of the checkpoint a resume starts from (0: none)."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        return 0
    with open(path) as f:
        match = re.search(r'iter_(\d+)\.pth$', f.read().strip())
    return int(match[1]) if match else 0


def _timed(work_dir: str, seconds: float, done: int) -> Tuple[float, int]:
    """Training seconds and iterations summed over the invocations that trained
    this run (kept in WORK_DIR/train_time.json), so that a run trained by one
    process and evaluated by a later one keeps its timing."""
    path = osp.join(work_dir, 'train_time.json')
    if osp.exists(path):
        with open(path) as f:
            before = json.load(f)
        seconds, done = seconds + before['seconds'], done + before['iterations']
    with open(path, 'w') as f:
        json.dump(dict(seconds=seconds, iterations=done), f)
    return seconds, done


def train(spec: RunSpec, s: Settings, log: Callable[[str], None]) -> dict:
    cfg = run_cfg(spec, s)
    init_default_scope('mmengine')
    # Runner.train() resumes by itself (after initialising the weights); loading
    # before it would have the initialisation overwrite the loaded weights
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    start_iter = _checkpoint_iteration(cfg.work_dir) if cfg.resume else 0
    if start_iter:
        log(f'[{spec.name}] resuming at iteration {start_iter}')
    start = time.perf_counter()
    runner.train()
    seconds, done = _timed(cfg.work_dir, time.perf_counter() - start,
                           runner.iter - start_iter)
    info = dict(iterations=runner.iter, resumed_from=start_iter,
                train_seconds=round(seconds, 1),
                seconds_per_iter=round(seconds / done, 4) if done else None,
                final_losses=_member_losses(runner),
                checkpoint=osp.join(cfg.work_dir, f'iter_{runner.iter}.pth'))
    del runner
    return info


def evaluate(spec: RunSpec, s: Settings, checkpoint: str, configs, calib_batches: int):
    cfg = run_cfg(spec, s)
    cfg.resume = False
    init_default_scope('mmengine')
    start = time.perf_counter()
    rows, _ = build_lookup_table(cfg, checkpoint,
                                 [Subnet(w, r) for w, r in configs], METRIC,
                                 num_batches=calib_batches)
    return ([dict(width=r.subnet.width, resolution=r.subnet.scale, mflops=r.flops / 1e6,
                  params_k=r.params / 1e3, top1=r.metric) for r in rows],
            round(time.perf_counter() - start, 1))


def _lock_path(spec: RunSpec, s: Settings) -> str:
    return osp.join(s.work_dir, f'{spec.name}.lock')


def running_elsewhere(spec: RunSpec, s: Settings) -> bool:
    """Whether another live process is running ``spec`` (its lock file names a
    live PID), so a second invocation of the study leaves it alone."""
    try:
        with open(_lock_path(spec, s)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def execute(spec: RunSpec, s: Settings, log: Callable[[str], None] = print) -> dict:
    """:func:`execute_unlocked` under the run's lock file."""
    if running_elsewhere(spec, s):
        raise RuntimeError(f'{spec.name} is being run by another process '
                           f'({_lock_path(spec, s)})')
    os.makedirs(s.work_dir, exist_ok=True)
    with open(_lock_path(spec, s), 'w') as f:
        f.write(str(os.getpid()))
    try:
        return execute_unlocked(spec, s, log)
    finally:
        os.remove(_lock_path(spec, s))


def execute_unlocked(spec: RunSpec, s: Settings, log: Callable[[str], None] = print) -> dict:
    """The run's result: read back when it exists, else trained (resuming from
    its last checkpoint) and evaluated, then saved. Calibration-set sizes asked
    for later are evaluated on the kept checkpoint and added."""
    result = load_result(spec, s)
    if result is None:
        check_data(s.data_root)
        info = train(spec, s, log)
        log(f'[{spec.name}] trained to iteration {info["iterations"]} '
            f'({info["seconds_per_iter"]} s/iteration); evaluating')
        rows, eval_s = evaluate(spec, s, info['checkpoint'], spec.evaluated_configs(),
                                s.calib_batches)
        result = dict(spec=spec.as_dict(), settings=s.__dict__, **info, rows=rows,
                      eval_seconds=eval_s, calibration_sizes={},
                      versions=versions(), finished=_now())
        _write_json(result_path(spec, s), result)
        result = load_result(spec, s)  # as later invocations will see it
        log(f'[{spec.name}] done: ' + ', '.join(
            f'{r["width"]:g}x-{r["resolution"]} {r["top1"]:.2f}' for r in rows
            if (r['width'], r['resolution']) in _points(spec)))
    for size in spec.calibration_sizes:
        if str(size) in result['calibration_sizes']:
            continue
        check_data(s.data_root)
        rows, _ = evaluate(spec, s, result['checkpoint'], _points(spec), size)
        result['calibration_sizes'][str(size)] = rows
        _write_json(result_path(spec, s), result)
        log(f'[{spec.name}] calibration on {size} batch(es) evaluated')
    return result


def _points(spec: RunSpec):
    return [tuple(spec.point)] if spec.point else [tuple(p) for p in INET_POINTS]


def versions() -> dict:
    import platform
    import mmcv
    import mmengine
    return dict(python=platform.python_version(), torch=torch.__version__,
                mmengine=mmengine.__version__, mmcv=mmcv.__version__,
                mutual_mm=mutual_mm.__version__,
                device=(torch.cuda.get_device_name(0) if torch.cuda.is_available()
                        else f'cpu ({os.cpu_count()} cores, torch threads '
                             f'{torch.get_num_threads()})'),
                cpu=_cpu_name(), platform=platform.platform())


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        return 'unknown'


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


# ------------------------------------------------------------ many runs
def run_parallel(specs: List[RunSpec], jobs: int, child_args: List[str],
                 s: Settings, log: Callable[[str], None]) -> List[str]:
    """Run the pending ``specs`` in ``jobs`` child processes (one torch thread
    each: on a small CPU, processes scale better than threads for these tiny
    layers), in order; each child writes its own result file. Returns the names
    of the runs that failed (their logs say why)."""
    pending = [sp for sp in specs if not is_complete(sp, s) and not running_elsewhere(sp, s)]
    running: Dict[str, subprocess.Popen] = {}
    failed = []
    os.makedirs(s.work_dir, exist_ok=True)
    script = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'replicate_fashion_mnist.py')
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            log_path = osp.join(s.work_dir, f'{spec.name}.log')
            log(f'[{spec.name}] started (log: {log_path})')
            with open(log_path, 'a') as out:
                running[spec.name] = subprocess.Popen(
                    [sys.executable, script, '--only', spec.name, '--threads', '1',
                     *child_args], stdout=out, stderr=subprocess.STDOUT)
        time.sleep(2)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                if proc.returncode:
                    failed.append(name)
                    log(f'[{name}] FAILED (exit {proc.returncode}); see its log')
                else:
                    log(f'[{name}] finished')
    return failed


def is_complete(spec: RunSpec, s: Settings) -> bool:
    result = load_result(spec, s)
    return result is not None and all(
        str(n) in result['calibration_sizes'] for n in spec.calibration_sizes)
