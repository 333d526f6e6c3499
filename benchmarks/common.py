"""What the benchmark scripts share: flags and set-up, the machine and versions
a result was measured on, timing (device synchronised, variants round-robin,
paired ratios: the machines are shared with other jobs), FLOPs counts, pieces of
the generated-data configs, and writing the JSON. Each script's JSON keeps the
keys of its earlier results (docs/benchmarks.md quotes them): ``rename``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import logging
import os
import os.path as osp
import platform
import statistics
import time
import warnings
from typing import Callable, Sequence

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# setuptools' deprecation notice, printed by the OpenMMLab imports on every run
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


# ------------------------------------------------------------ flags, set-up
def arg_parser(doc: str, device: bool = True, cudnn: bool = True) -> argparse.ArgumentParser:
    """A parser whose ``--help`` is the script's docstring, with ``--device``,
    ``--cudnn-benchmark``, ``--threads``, ``--seed`` and ``--out``."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if device:
        p.add_argument('--device', choices=('cpu', 'cuda'),
                       default='cuda' if torch.cuda.is_available() else 'cpu')
    if cudnn:
        p.add_argument('--cudnn-benchmark', action='store_true',
                       help='torch.backends.cudnn.benchmark = True (cuda only)')
    p.add_argument('--threads', type=int, default=None,
                   help="torch.set_num_threads (default: torch's own); on a shared, loaded "
                        'machine 1 avoids OpenMP threads waiting on each other')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None, help='JSON output (default: see above)')
    return p


def finish_args(p: argparse.ArgumentParser, args, out: str, positive: Sequence[str] = (),
                non_negative: Sequence[str] = (), **device_defaults):
    """Set each flag left None to its ``(cuda, cpu)`` default in
    ``device_defaults`` and ``--out`` to ``benchmarks/results/<out>.json``
    (``{device}`` filled in); refuse cuda without a GPU, cudnn.benchmark on
    the CPU and counts below their minimum."""
    device = getattr(args, 'device', 'cpu')
    for name, (cuda, cpu) in device_defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, cuda if device == 'cuda' else cpu)
    if device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda but torch.cuda.is_available() is False')
    if getattr(args, 'cudnn_benchmark', False) and device != 'cuda':
        p.error('--cudnn-benchmark needs --device cuda')
    for names, low in ((positive, 1), (non_negative, 0)):
        for name in names:
            if getattr(args, name) < low:
                p.error(f'--{name.replace("_", "-")} must be >= {low}')
    args.out = args.out or result_path(out.format(device=device))
    return args


def result_path(stem: str) -> str:
    return osp.join(ROOT, 'benchmarks', 'results', f'{stem}.json')


def start(args) -> torch.device:
    """Threads, seed and cudnn.benchmark as the flags say, mmengine quiet."""
    logging.getLogger('mmengine').setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(getattr(args, 'device', 'cpu'))
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(getattr(args, 'cudnn_benchmark', False))
    return device


# ------------------------------------------------------- machine, results
def device_name(device: torch.device) -> str:
    """The GPU, or the CPU model (on Linux ``platform`` names only the
    architecture)."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()


VERSION_KEYS = ('python', 'torch', 'mmcv', 'mmengine', 'mmdet', 'mmaction')


def environment(benchmark: str, device: torch.device, rename: dict = None) -> dict:
    """The head of a result: which benchmark, when, the versions (None: not
    installed), the machine. ``rename``: ``{key: the key this script's results use}``."""
    import importlib
    versions = {}
    for name in VERSION_KEYS[2:]:
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError:
            versions[name] = None
    env = dict(benchmark=benchmark,
               timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(),
               python=platform.python_version(), torch=torch.__version__, **versions,
               device=device.type, device_name=device_name(device),
               cpu_count=os.cpu_count(), num_threads=torch.get_num_threads())
    return {(rename or {}).get(k, k): v for k, v in env.items()}


def describe_machine(device: torch.device) -> str:
    cudnn = f' | cudnn.benchmark {torch.backends.cudnn.benchmark}' if device.type == 'cuda' else ''
    return (f'torch {torch.__version__} | device {device.type} ({device_name(device)}) | '
            f'threads {torch.get_num_threads()}{cudnn}')


def describe_load(result: dict) -> str:
    """The load average around a timing (``Watch.as_dict()`` keys), with a
    warning when other processes wanted more CPUs than there are."""
    before, after, cpus = result['loadavg_before'][0], result['loadavg_after'][0], os.cpu_count()
    line = f'load avg {before:.2f} -> {after:.2f} on {cpus} CPUs'
    if max(before, after) > 1.5 * cpus:
        line += ' (WARNING: other processes competed: times inflated, ratios noisier)'
    return line


def save_json(path: str, result: dict, quiet: bool = False) -> None:
    """``result`` written to ``path`` atomically (a killed run leaves no half file)."""
    from mutual_mm.fileio import write_text
    write_text(path, json.dumps(result, indent=1))
    if not quiet:
        shown = osp.relpath(path)
        print(f'\nwrote {path if shown.startswith("..") else shown}')


# ------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def clock(fn: Callable, device: torch.device, quiet: bool = False):
    """``(seconds, fn())``. Garbage is collected first (so a collection does not
    land inside one variant's time) and the device synchronised before and
    after (so the GPU work ``fn`` queued counts); ``quiet`` swallows what ``fn``
    prints (mmengine's progress bars)."""
    gc.collect()
    sync(device)
    start_s = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        out = fn()
    sync(device)
    return time.perf_counter() - start_s, out


class Watch:
    """Wall time and load average around a timed section."""

    def __enter__(self) -> 'Watch':
        self.loadavg_before = os.getloadavg()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._start
        self.loadavg_after = os.getloadavg()

    def as_dict(self) -> dict:
        return dict(timing_wall_s=self.wall_s, loadavg_before=self.loadavg_before,
                    loadavg_after=self.loadavg_after)


def run_rounds(warmup: int, repeats: int, one_round: Callable[[int, bool], None]) -> Watch:
    """``one_round(r, timed)`` for the warm-up rounds, then the timed ones."""
    with Watch() as watch:
        for r in range(warmup + repeats):
            one_round(r, r >= warmup)
    return watch


def round_robin(variants: dict, device: torch.device, warmup: int, repeats: int,
                prepare: Callable[[str], None] = None):
    """Each round times every ``variants[name]()`` once (after an untimed
    ``prepare(name)``), the order rotating (:func:`rotated`):
    ``({name: [seconds per timed round]}, Watch)``."""
    times = {name: [] for name in variants}

    def one_round(r: int, timed: bool) -> None:
        for name in rotated(list(variants), r):
            if prepare:
                prepare(name)
            seconds, _ = clock(variants[name], device)
            if timed:
                times[name].append(seconds)

    return times, run_rounds(warmup, repeats, one_round)


def rotated(seq: Sequence, r: int) -> list:
    """``seq`` rotated by ``r``: who goes first changes every round, so a burst
    of load from elsewhere does not always hit the same variant."""
    k = r % len(seq)
    return list(seq[k:]) + list(seq[:k])


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> dict:
    """Times ``a`` against ``b`` measured in the same rounds (under the same
    load): the per-round ratios, their median and quartiles, and the ratio of
    the medians."""
    per_round = [x / y for x, y in zip(a, b)]
    q1, median, q3 = (statistics.quantiles(per_round, n=4, method='inclusive')
                      if len(per_round) > 1 else per_round * 3)
    return dict(per_round=per_round, median=median, q1=q1, q3=q3,
                of_medians=statistics.median(a) / statistics.median(b))


def count_flops(module: torch.nn.Module, *inputs) -> int:
    """Forward FLOPs of ``module(*inputs)`` by mmengine's FlopAnalyzer (one
    multiply-add = one flop), traced in eval mode (the count does not depend on
    the mode, BN statistics would) without gradients."""
    from mmengine.analysis import FlopAnalyzer
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # jit TracerWarnings on int(x.shape[1])
            analyzer = FlopAnalyzer(module, inputs)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            return int(analyzer.total())
    finally:
        module.train(was_training)


# ------------------------------------------------------------------- plots
def log_axes(ncols: int = 1, figsize=(7.0, 4.4), **kw):
    """``(figure, axes)``: log-scale x axes labelled in plain numbers, a grid."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=figsize, dpi=130, **kw)
    for ax in (axes if ncols > 1 else [axes]):
        ax.set_xscale('log')
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:g}'))
        ax.grid(alpha=0.3)
    return fig, axes


def save_figure(fig, path: str) -> str:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------- generated-data configs
def view_sizes(size: int, frames: int):
    """The paper's Slow-8x8 views (section 6.5) for full size S x T frames:
    sizes S, 0.8S, 0.63S and frames T, 0.63T, 0.4T."""
    return ([size, int(round(0.8 * size)), int(round(0.63 * size))],
            [frames, max(1, int(round(0.63 * frames))), max(1, int(round(0.4 * frames)))])


def decoded_clip(clip_len: int, interval: int, test_mode: bool = False) -> list:
    """The head of a video pipeline: one clip of ``clip_len`` frames, decoded."""
    return [dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=clip_len, frame_interval=interval,
                 num_clips=1, **(dict(test_mode=True) if test_mode else {})),
            dict(type='DecordDecode')]


def loader_cfg(dataset: dict, batch: int, shuffle: bool, **extra) -> dict:
    """A dataloader without workers: what is timed is the work itself."""
    return dict(batch_size=batch, num_workers=0, persistent_workers=False,
                sampler=dict(type='DefaultSampler', shuffle=shuffle), dataset=dataset,
                **extra)


def video_dataset_cfg(ann: str, root: str, pipeline: list, **extra) -> dict:
    return dict(type='VideoDataset', ann_file=ann, data_prefix=dict(video=root),
                pipeline=pipeline, **extra)


def runner_cfg(cfg, work_dir: str, seed: int):
    """``cfg`` trimmed for a benchmark's Runner: no validation, no pretrained
    weights, a one-iteration schedule that never logs nor checkpoints."""
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.load_from, cfg.resume, cfg.work_dir = None, False, work_dir
    cfg.log_level = 'WARNING'  # no config dump, no hook table
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=10**6)
    cfg.log_processor = dict(by_epoch=False)
    cfg.randomness = dict(seed=seed)
    cfg.env_cfg = dict(cfg.get('env_cfg', {}), cudnn_benchmark=False)  # the flag decides
    cfg.visualizer = dict(cfg.visualizer, vis_backends=[])
    return cfg
