"""The Fashion-MNIST study as a :class:`studies.study.Study`: each run's config
and its evaluation (the runner, resuming, locks and ``--jobs``: ``study.py``).

Every run goes through the package's own parts: ``MutualImageClassifier`` in a
real mmengine ``Runner`` with ``MutualLearningHook`` and ``MultiResolution``,
then ``build_lookup_table`` (BN calibration per configuration, the
``CalibratedSubnetHook`` test loop, mmengine's ``FlopAnalyzer``). While a run
trains, a checkpoint every ``CHECKPOINT_EVERY`` steps: what a resume starts from.
"""
import os.path as osp
import time
from dataclasses import dataclass

import torch
from mmengine.config import Config
from mmengine.model import ImgDataPreprocessor

import mutual_mm
from benchmarks.common import loader_cfg
from studies.study import Study, run_config
from mutual_mm.deploy import Subnet, build_lookup_table
from mutual_mm.models import SlimMobileNetV1
from mutual_mm.registry import MODELS

from .plan import INET_POINTS, PLANS, RunSpec, plan_runs

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
    the package's. Why: with ImageNet strides (x32) resolution barely changes the
    cost of 20-32 px inputs (2.48 vs 3.15 MFLOPs at 20 vs 32 px, width 1.0), so
    the trade-off under study vanishes; a stride-1 stem gives 20 px 0.55x the
    FLOPs of 32 px (and 32 px a 2x2 last map, as 224 px gives 7x7 on ImageNet)."""

    def __init__(self, stem_stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.stem.conv.stride = (stem_stride, stem_stride)


@MODELS.register_module(force=True)
class ChannelsLastImgDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` whose batch comes out channels-last. Why:
    oneDNN runs these small layers 1.3-1.7x faster on NHWC inputs on the CPU (one
    forward/backward of batch 64 at 1x-32 / 0.5x-24 / 0.25x-20: 0.161 / 0.059 /
    0.031 s contiguous, 0.125 / 0.035 / 0.020 s channels-last, one thread); the
    numbers are the same up to float rounding."""

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
                     num_random=spec.num_random, distill=spec.distill,
                     stage_widths=spec.stage_widths))
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
        experiment_name=spec.name,
        train_dataloader=loader_cfg(_dataset_cfg(s, 'train', pipeline), spec.batch_size,
                                    shuffle=True, drop_last=True),
        # iteration-based so every method gets exactly `total` optimizer steps
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=total, val_interval=10**9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=spec.lr, momentum=0.9,
                                          nesterov=True, weight_decay=s.weight_decay)),
        param_scheduler=schedulers,
        test_dataloader=loader_cfg(_dataset_cfg(s, 'test', test_pipeline), s.test_batch_size,
                                   shuffle=False),
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
    ))


class FashionMNIST(Study):
    """The runs of the ``groups`` of :data:`plan.PLANS`: their configs (:func:`run_cfg`),
    each evaluated over its configurations and, on the kept checkpoint, over the
    calibration-set sizes it asks for."""

    def __init__(self, settings: Settings = Settings(), groups=tuple(PLANS)):
        self.s, self.groups = settings, list(groups)
        self.results_dir, self.work_dir = settings.results_dir, settings.work_dir

    def runs(self):
        return plan_runs(self.groups)

    def config(self, spec: RunSpec) -> Config:
        check_data(self.s.data_root)
        return run_cfg(spec, self.s)

    def describe(self, spec: RunSpec) -> dict:
        return dict(spec=spec.as_dict(), settings=self.s.__dict__)

    def complete(self, spec: RunSpec, result: dict) -> bool:
        return all(str(n) in result['calibration_sizes'] for n in spec.calibration_sizes)

    def table(self, spec: RunSpec, checkpoint: str, configs, calib_batches: int) -> list:
        rows, _ = build_lookup_table(run_config(self, spec), checkpoint,
                                     [Subnet(w, r) for w, r in configs], METRIC,
                                     num_batches=calib_batches)
        return [dict(width=r.subnet.width, resolution=r.subnet.scale, mflops=r.flops / 1e6,
                     params_k=r.params / 1e3, top1=r.metric) for r in rows]

    def evaluate(self, spec: RunSpec, result: dict, log) -> None:
        points = [tuple(spec.point)] if spec.point else [tuple(p) for p in INET_POINTS]
        if 'rows' not in result:
            start = time.perf_counter()
            result['rows'] = self.table(spec, result['checkpoint'], spec.evaluated_configs(),
                                        self.s.calib_batches)
            result.update(eval_seconds=round(time.perf_counter() - start, 1),
                          calibration_sizes={})
            log(f'[{spec.name}] done: ' + ', '.join(
                f'{r["width"]:g}x-{r["resolution"]} {r["top1"]:.2f}' for r in result['rows']
                if (r['width'], r['resolution']) in points))
        for size in spec.calibration_sizes:
            if str(size) not in result['calibration_sizes']:
                result['calibration_sizes'][str(size)] = self.table(
                    spec, result['checkpoint'], points, size)
                log(f'[{spec.name}] calibration on {size} batch(es) evaluated')


