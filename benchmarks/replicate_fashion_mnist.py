"""Small-scale replication of MutualNet vs US-Net vs I-Net on Fashion-MNIST.

The same slim backbone (``SlimMobileNetV1``, ``widen_factor=0.5``: the paper's
MobileNetV1 layer table with half the channels, ImageNet strides) with
``MutualImageClassifier`` (global pool + linear head) is trained three ways, each
through a real mmengine ``Runner`` with the same data, seed, optimizer, LR
schedule, batch size and number of optimizer steps (the budget: ``--iters``
steps of ``--batch-size`` images; every run sees the same images in the same
order):

* **MutualNet**: ``MutualLearningHook(width_range=(0.25, 1.0), num_random=2)``
  with ``MultiResolution(scales=[32, 28, 24, 20])``: per iteration the full
  network at 32 px (cross-entropy), the 0.25x network and 2 random widths
  (0.05 grid), each on a resolution drawn from {32, 28, 24, 20}, learning the KL
  divergence to the full network's detached prediction (paper §3.2);
* **US-Net**: the same hook with ``multi_resolution=False`` and the pipeline at
  32 px only: the sandwich rule (max, min, 2 random widths) with in-place
  distillation, every member at the full resolution;
* **I-Net**: independent networks, one per (width, resolution) point, each
  trained alone at its configuration (the hook with ``width_range=(w, w)``,
  ``num_random=0``: one member per iteration, cross-entropy; the network *is*
  the width-``w`` slice, so its FLOPs are exactly those of that configuration).

Resolutions are the paper's CIFAR set {32, 28, 24, 20} (§6.3): the 28 px
images are resized bilinearly (mmcv ``Resize``), 32 being an upsampling.
The only augmentation is a horizontal flip (p=0.5).

Every model is then evaluated on the whole test split (10,000 images) after BN
calibration at each configuration (``mutual_mm.deploy.build_lookup_table``:
``calibrate_configs`` on training images through the test pipeline, then the
``CalibratedConfigHook`` test loop), over widths x resolutions for MutualNet
and US-Net (US-Net at 32 px is the US-Net curve; at all resolutions it is the
paper's "US-Net+"), at its own configuration for each I-Net. FLOPs are
mmengine's ``FlopAnalyzer`` count of one input at each configuration
(``mutual_mm.deploy.measure_complexity``).

Outputs in ``--out-dir``: ``results.json`` (everything: settings, versions,
wall times, rows), ``results.csv`` (one row per method x configuration),
``accuracy_vs_flops.png`` and the per-method lookup tables
(``table_<method>.csv/json``, written by ``mutual_mm.deploy.save_table``).

Run from the repository root (the numbers in docs/replication.md)::

    nice -n 10 .venv/bin/python benchmarks/replicate_fashion_mnist.py

A CPU is enough (that run's wall time is in docs/replication.md); a GPU is used
when torch sees one. ``--iters/--train-samples/...`` shrink it (the tests run a
few iterations on generated idx files).
"""
import argparse
import copy
import csv
import datetime
import json
import logging
import math
import os
import os.path as osp
import platform
import sys
import tempfile
import time
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mutual_mm  # noqa: E402,F401  (registers everything)
from mutual_mm.deploy import (SubnetConfig, build_lookup_table,  # noqa: E402
                              pareto_frontier, save_table)
from mutual_mm.models import SlimMobileNetV1  # noqa: E402
from mutual_mm.registry import MODELS  # noqa: E402

FMNIST_DIR = '/usr/share/datasets/fashion-mnist'
# Fashion-MNIST pixel mean / std (0.2860, 0.3530 of 255), grey in all 3 channels.
MEAN, STD = [72.94] * 3, [90.0] * 3
METRIC = 'accuracy/top1'
METHODS = ('mutualnet', 'usnet', 'inet')
LABELS = dict(mutualnet='MutualNet', usnet='US-Net', inet='I-Net')


def parse_point(text: str):
    """'0.5:24' -> (0.5, 24)."""
    try:
        width, res = text.split(':')
        return float(width), int(res)
    except ValueError:
        raise argparse.ArgumentTypeError(f'I-Net point {text!r}: valid form WIDTH:RES, '
                                         'e.g. 0.5:24') from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', default=FMNIST_DIR,
                   help='folder of the *-ubyte.gz idx files')
    p.add_argument('--out-dir', default=osp.join(ROOT, 'docs', 'replication'))
    p.add_argument('--work-dir', default=None,
                   help='checkpoints and logs (default: a temporary folder)')
    p.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS))
    p.add_argument('--train-samples', type=int, default=0,
                   help='first N training images (0: all 60,000)')
    p.add_argument('--test-samples', type=int, default=0,
                   help='first N test images (0: all 10,000)')
    p.add_argument('--iters', type=int, default=600,
                   help='optimizer steps of every run: the shared budget')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.1)
    p.add_argument('--weight-decay', type=float, default=1e-4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--widen-factor', type=float, default=0.5)
    p.add_argument('--stem-stride', type=int, default=1,
                   help='1: CIFAR-style stem (default); 2: the ImageNet network')
    p.add_argument('--resolutions', type=int, nargs='+', default=[32, 28, 24, 20],
                   help='MutualNet training resolutions, the first the full one')
    p.add_argument('--width-range', type=float, nargs=2, default=[0.25, 1.0])
    p.add_argument('--num-random', type=int, default=2)
    p.add_argument('--eval-widths', type=float, nargs='+', default=[0.25, 0.5, 0.75, 1.0])
    p.add_argument('--inet', type=parse_point, nargs='+',
                   default=[(1.0, 32), (0.75, 28), (0.5, 32), (0.5, 24), (0.25, 20)],
                   help='I-Net (width:resolution) points')
    p.add_argument('--calib-batches', type=int, default=10,
                   help='training batches per configuration for BN calibration')
    p.add_argument('--test-batch-size', type=int, default=500)
    p.add_argument('--replot', action='store_true',
                   help='only redraw the plot and print the table from '
                   'OUT_DIR/results.json')
    p.add_argument('--threads', type=int, default=1,
                   help='torch CPU threads (ignored on a GPU). On a shared machine '
                   'more threads than free cores make OpenMP barrier waits dominate '
                   '(measured: 27 s vs 2.3 s per step with 2 vs 1 thread at load 7 '
                   'on 2 cores)')
    return p.parse_args(argv)


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


def model_cfg(args) -> dict:
    channels = mutual_mm.ops.make_divisible(1024 * args.widen_factor, 8)
    return dict(
        type='MutualImageClassifier',
        backbone=dict(type='CifarSlimMobileNetV1', stem_stride=args.stem_stride,
                      widen_factor=args.widen_factor, out_indices=(4,)),
        head=dict(type='MutualLinearClsHead', num_classes=10, in_channels=channels),
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=MEAN, std=STD))


def dataset_cfg(args, split: str, pipeline: list) -> dict:
    samples = args.train_samples if split == 'train' else args.test_samples
    return dict(type='MNISTIdxDataset', data_root=args.data_root, split=split,
                indices=samples or None, pipeline=pipeline,
                test_mode=split == 'test')


def run_cfg(args, name: str, train_pipeline: list, hook: dict, work_dir: str) -> Config:
    """One training run; identical for every method but the pipeline and hook."""
    total = args.iters
    warmup = max(1, total // 20)
    test_pipeline = [dict(type='Resize', scale=args.resolutions[0], keep_ratio=False),
                     dict(type='PackClsInputs')]
    cfg = dict(
        default_scope='mmengine',
        model=model_cfg(args),
        work_dir=osp.join(work_dir, name),
        experiment_name=name,
        train_dataloader=dict(
            batch_size=args.batch_size, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True), drop_last=True,
            dataset=dataset_cfg(args, 'train', train_pipeline)),
        # iteration-based so every method gets exactly `total` optimizer steps
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=total, val_interval=10**9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=args.lr, momentum=0.9,
                                          nesterov=True, weight_decay=args.weight_decay)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=total,
                 T_max=total - warmup, eta_min=0.0)],
        test_dataloader=dict(
            batch_size=args.test_batch_size, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset_cfg(args, 'test', test_pipeline)),
        test_evaluator=dict(type='TopKAccuracy', topk=(1,)),
        test_cfg=dict(type='TestLoop'),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=50),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=total,
                            save_last=True),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[hook],
        randomness=dict(seed=args.seed),
        log_processor=dict(by_epoch=False),
        log_level='WARNING',
        visualizer=dict(type='Visualizer', vis_backends=[]),
    )
    return Config(cfg)


def runs(args):
    """(name, method, train pipeline, hook, evaluated configurations)."""
    flip = dict(type='RandomFlip', prob=0.5, direction='horizontal')
    tail = [dict(type='Resize', keep_ratio=False), dict(type='PackClsInputs')]
    full = args.resolutions[0]
    grid = [SubnetConfig(w, r) for w in args.eval_widths for r in args.resolutions]
    out = []
    if 'mutualnet' in args.methods:
        out.append(('mutualnet', 'mutualnet', [
            flip, dict(type='MultiResolution', scales=list(args.resolutions), transforms=tail)],
            dict(type='MutualLearningHook', width_range=tuple(args.width_range),
                 num_random=args.num_random, distill='kl'), grid))
    if 'usnet' in args.methods:
        out.append(('usnet', 'usnet', [
            flip, dict(type='Resize', scale=full, keep_ratio=False),
            dict(type='PackClsInputs')],
            dict(type='MutualLearningHook', width_range=tuple(args.width_range),
                 num_random=args.num_random, distill='kl', multi_resolution=False), grid))
    if 'inet' in args.methods:
        for width, res in args.inet:
            out.append((f'inet_w{width:g}_r{res}', 'inet', [
                flip, dict(type='Resize', scale=res, keep_ratio=False),
                dict(type='PackClsInputs')],
                dict(type='MutualLearningHook', width_range=(width, width), num_random=0,
                     multi_resolution=False), [SubnetConfig(width, res)]))
    return out


# ---------------------------------------------------------------- the runs
def train_and_evaluate(args, work_dir: str, log) -> list:
    results = []
    for name, method, pipeline, hook, configs in runs(args):
        cfg = run_cfg(args, name, pipeline, hook, work_dir)
        init_default_scope('mmengine')
        start = time.perf_counter()
        runner = Runner.from_cfg(copy.deepcopy(cfg))
        runner.train()
        train_s = time.perf_counter() - start
        iters = runner.iter
        checkpoint = osp.join(cfg.work_dir, f'iter_{iters}.pth')
        scalars = runner.message_hub.log_scalars
        final_loss = float(scalars['train/loss'].mean(50)) if 'train/loss' in scalars \
            else float('nan')
        del runner
        log(f'[{name}] trained {iters} iterations in {train_s:.0f} s '
            f'(mean loss of the last 50: {final_loss:.3f}); evaluating '
            f'{len(configs)} configuration(s)')
        start = time.perf_counter()
        rows, _ = build_lookup_table(copy.deepcopy(cfg), checkpoint, configs, METRIC,
                                     num_batches=args.calib_batches)
        eval_s = time.perf_counter() - start
        save_table(rows, osp.join(args.out_dir, f'table_{name}'), METRIC)
        log(f'[{name}] evaluated in {eval_s:.0f} s')
        results.append(dict(name=name, method=method, iterations=iters,
                            train_seconds=round(train_s, 1), eval_seconds=round(eval_s, 1),
                            final_train_loss=final_loss,
                            rows=[dict(r.as_dict()) for r in rows]))
    return results


def flat_rows(results: list) -> list:
    rows = []
    for res in results:
        for r in res['rows']:
            rows.append(dict(method=res['method'], run=res['name'], width=r['width'],
                             resolution=r['scale'][0] if isinstance(r['scale'], (list, tuple))
                             else r['scale'], mflops=r['flops'] / 1e6,
                             params_k=r['params'] / 1e3, top1=r['metric']))
    return rows


def frontier(rows: list) -> list:
    from mutual_mm.deploy import TableRow
    table = [TableRow(SubnetConfig(r['width'], r['resolution']), r['mflops'],
                      r['params_k'], r['top1']) for r in rows]
    keep = {(t.config.width, t.config.scale) for t in pareto_frontier(table)}
    return sorted((r for r in rows if (r['width'], r['resolution']) in keep),
                  key=lambda r: r['mflops'])


def plot(rows: list, path: str, full_res: int, title: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=130)
    mut = [r for r in rows if r['method'] == 'mutualnet']
    us = [r for r in rows if r['method'] == 'usnet']
    inet = [r for r in rows if r['method'] == 'inet']
    if mut:
        ax.scatter([r['mflops'] for r in mut], [r['top1'] for r in mut], s=14,
                   color='tab:red', alpha=0.35)
        f = frontier(mut)
        ax.plot([r['mflops'] for r in f], [r['top1'] for r in f], '-o', color='tab:red',
                ms=4, lw=2, label='MutualNet (frontier over width x resolution)')
    if us:
        us_full = sorted((r for r in us if r['resolution'] == full_res),
                         key=lambda r: r['mflops'])
        ax.plot([r['mflops'] for r in us_full], [r['top1'] for r in us_full], '-s',
                color='tab:blue', ms=4, lw=2, label=f'US-Net ({full_res} px, widths)')
        f = frontier(us)
        ax.plot([r['mflops'] for r in f], [r['top1'] for r in f], '--', color='tab:blue',
                lw=1.2, alpha=0.7, label='US-Net+ (frontier, any resolution at test)')
    if inet:
        ax.scatter([r['mflops'] for r in inet], [r['top1'] for r in inet], marker='^',
                   s=46, color='tab:green', zorder=3, label='I-Net (independent)')
        for r in inet:
            ax.annotate(f"{r['width']:g}x-{r['resolution']}", (r['mflops'], r['top1']),
                        textcoords='offset points', xytext=(4, -10), fontsize=7,
                        color='tab:green')
    for r in frontier(mut) if mut else []:
        ax.annotate(f"{r['width']:g}x-{r['resolution']}", (r['mflops'], r['top1']),
                    textcoords='offset points', xytext=(-8, -12), fontsize=7,
                    color='tab:red')
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:g}'))
    ax.set_xlabel('MFLOPs (one 3-channel image, log scale)')
    ax.set_ylabel('top-1 accuracy (%), Fashion-MNIST test')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_results(summary: dict, out_dir: str) -> str:
    s = summary['settings']
    return plot(summary['rows'], osp.join(out_dir, 'accuracy_vs_flops.png'),
                s['resolutions'][0],
                f'Fashion-MNIST, SlimMobileNetV1 x{s["widen_factor"]:g} (stem stride '
                f'{s["stem_stride"]}), every run {summary["iterations_per_run"]} steps '
                f'of batch {s["batch_size"]}, seed {s["seed"]}')


def versions() -> dict:
    import mmcv
    import mmengine
    return dict(python=platform.python_version(), torch=torch.__version__,
                mmengine=mmengine.__version__, mmcv=mmcv.__version__,
                mutual_mm=mutual_mm.__version__,
                device=(torch.cuda.get_device_name(0) if torch.cuda.is_available()
                        else f'cpu ({os.cpu_count()} cores, torch threads '
                             f'{torch.get_num_threads()})'),
                platform=platform.platform())


def format_table(rows: list) -> str:
    lines = [f'{"method":<10}{"width":>7}{"res":>5}{"MFLOPs":>9}{"top-1 %":>9}']
    for r in sorted(rows, key=lambda r: (r['method'], -r['mflops'])):
        lines.append(f'{LABELS[r["method"]]:<10}{r["width"]:>7g}{r["resolution"]:>5}'
                     f'{r["mflops"]:>9.3f}{r["top1"]:>9.2f}')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.resolutions != sorted(args.resolutions, reverse=True):
        raise SystemExit('--resolutions: give the full (largest) resolution first, '
                         'then smaller ones')
    os.makedirs(args.out_dir, exist_ok=True)
    if args.replot:
        with open(osp.join(args.out_dir, 'results.json')) as f:
            summary = json.load(f)
        plot_results(summary, args.out_dir)
        print(format_table(summary['rows']))
        return summary
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix='fmnist_replication_')
        args.work_dir = tmp.name
    MMLogger.get_current_instance().setLevel(logging.WARNING)

    def log(msg):
        print(f'[{datetime.datetime.now():%H:%M:%S}] {msg}', flush=True)

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    log(f'Fashion-MNIST replication: {vars(args)}')
    start = time.perf_counter()
    results = train_and_evaluate(args, args.work_dir, log)
    wall = time.perf_counter() - start
    rows = flat_rows(results)
    summary = dict(
        command='python ' + ' '.join([osp.relpath(__file__, ROOT)] + (
            argv if argv is not None else sys.argv[1:])),
        settings={k: v for k, v in vars(args).items() if k not in ('work_dir',)},
        iterations_per_run=results[0]['iterations'] if results else 0,
        wall_seconds=round(wall, 1), versions=versions(),
        timestamp=datetime.datetime.now().isoformat(timespec='seconds'),
        runs=results, rows=rows,
        frontiers={m: [f"{r['width']:g}x-{r['resolution']}" for r in frontier(
            [r for r in rows if r['method'] == m])]
            for m in ('mutualnet', 'usnet') if any(r['method'] == m for r in rows)})
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    with open(osp.join(args.out_dir, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_results(summary, args.out_dir)
    print(format_table(rows))
    log(f'total wall time {wall:.0f} s; results in {args.out_dir}')
    if tmp is not None:
        tmp.cleanup()
    return summary


if __name__ == '__main__':
    main()
