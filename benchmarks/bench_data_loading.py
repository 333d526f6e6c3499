"""Data-loading throughput: the MultiResolution pipeline against the stock
single-resolution one, and where the time goes.

Two pipelines per task, identical up to their tail, run through the real
dataset (``CocoDataset`` / ``VideoDataset``, ``dataset[i]``) and mmengine's
``pseudo_collate``, in this process (what a ``DataLoader`` with
``num_workers=0`` does), so the numbers are the pipeline's own cost per sample
(one worker's share of the loading work):

* images (mmdet COCO, generated shapes with polygon masks, ``--image-size``):
  ``LoadImageFromFile, LoadAnnotations(bbox, mask), RandomFlip(0.5)``, then

  - ``single``: ``Resize(scales[0], keep_ratio) + PackDetInputs``;
  - ``multi``: ``MultiResolution(scales, [Resize(keep_ratio), PackDetInputs])``,
    default scales ``1000x{600, 480, 360, 240}`` (the provided Mask R-CNN config);

* videos (mmaction Kinetics format, generated mp4, ``--video-size``,
  ``--video-frames`` frames): ``DecordInit, SampleFrames(8, 8), DecordDecode,
  Resize(-1, 256), RandomResizedCrop, Flip(0.5)``, then

  - ``single``: ``Resize(224, 224) + FormatShape(NCTHW) + PackActionInputs``;
  - ``multi``: ``MultiResolution({224, 178, 142} x {8, 5, 3} frames, [Resize,
    FormatShape, PackActionInputs])`` (the provided Slow-8x8 config): 9 views.

Every round loads one batch with each variant, back to back (which goes first
alternates), the same samples and the same random draws (``random`` /
``np.random`` seeded alike), so load from other processes hits both alike.
Reported: samples/s of each variant (batch / median batch time), the median of
the per-round time ratios multi / single, and the output pixels per sample
(sum over views of T x H x W) whose ratio is what a cost proportional to the
output size would predict.

Where the time goes: each transform's ``__call__`` is wrapped by a timer (a
few microseconds per call), and so are the transforms inside
``MultiResolution``; its remainder (deep copy of the sample per view, frame
subset) is reported as ``copy + frame subset``. ``dataset`` is
``__getitem__`` minus its pipeline (data-info unpickling), ``pseudo_collate``
the collation. Shares are of the measured batch time.

Run from the repository root::

    .venv/bin/python benchmarks/bench_data_loading.py               # both tasks
    .venv/bin/python benchmarks/bench_data_loading.py --only image --repeats 20

Prints the tables and writes everything to ``--out`` (JSON, default
``benchmarks/results/data_loading.json``).  The pipelines run on the CPU
whatever the device: there is no ``--device``.
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
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from typing import Dict, List

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers MultiResolution)

IMAGE_SCALES = [(1000, 600), (1000, 480), (1000, 360), (1000, 240)]
VIDEO_SIZES = [224, 178, 142]
VIDEO_FRAMES = [8, 5, 3]
VARIANTS = ('single', 'multi')


# ----------------------------------------------------------------------- args
def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected WIDTHxHEIGHT, e.g. 640x480')
    return w, h


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--only', choices=('image', 'video'), default=None,
                   help='run one task only (default: both)')
    p.add_argument('--image-size', type=_size, default=(640, 480),
                   help='generated image size WxH (default 640x480)')
    p.add_argument('--num-images', type=int, default=64)
    p.add_argument('--image-batch', type=int, default=4)
    p.add_argument('--video-size', type=_size, default=(320, 240),
                   help='generated video size WxH (default 320x240)')
    p.add_argument('--video-frames', type=int, default=64,
                   help='frames per generated video (default 64: SampleFrames 8x8 spans 64)')
    p.add_argument('--num-videos', type=int, default=16)
    p.add_argument('--video-batch', type=int, default=4)
    p.add_argument('--repeats', type=int, default=20,
                   help='timed rounds per task (one batch per variant each)')
    p.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=None,
                   help='torch.set_num_threads and cv2.setNumThreads (default: their own)')
    p.add_argument('--data-dir', default=None,
                   help='where to generate the data (default: a temporary folder)')
    p.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results',
                                             'data_loading.json'))
    args = p.parse_args(argv)
    for name in ('num_images', 'image_batch', 'num_videos', 'video_batch', 'repeats'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.warmup < 0:
        p.error('--warmup must be >= 0')
    if args.video_frames < 8:
        p.error('--video-frames must be >= 8 (SampleFrames clip_len 8)')
    return args


# ----------------------------------------------------------------- pipelines
def image_pipelines(scales) -> Dict[str, list]:
    head = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='RandomFlip', prob=0.5)]
    return dict(
        single=head + [dict(type='Resize', scale=tuple(scales[0]), keep_ratio=True),
                       dict(type='PackDetInputs')],
        multi=head + [dict(type='MultiResolution', scales=[tuple(s) for s in scales],
                           transforms=[dict(type='Resize', keep_ratio=True),
                                       dict(type='PackDetInputs')])])


def video_pipelines(sizes, frames) -> Dict[str, list]:
    head = [dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=frames[0], frame_interval=8, num_clips=1),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(-1, 256)),
            dict(type='RandomResizedCrop'),
            dict(type='Flip', flip_ratio=0.5)]
    tail = [dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    return dict(
        single=head + [dict(type='Resize', scale=(sizes[0], sizes[0]), keep_ratio=False)]
        + tail,
        multi=head + [dict(type='MultiResolution', scales=list(sizes), frames=list(frames),
                           transforms=[dict(type='Resize', keep_ratio=False)] + tail)])


def build_dataset(task: str, ann: str, data_root: str, pipeline: list):
    """The host library's own dataset, built in its default scope (so the
    transforms inside MultiResolution are the host's too)."""
    from mmengine.registry import DefaultScope
    if task == 'image':
        from mmdet.registry import DATASETS
        from mutual_mm.datasets.synthetic import SHAPE_CLASSES
        cfg = dict(type='CocoDataset', data_root=data_root, ann_file=ann,
                   data_prefix=dict(img=''), metainfo=dict(classes=SHAPE_CLASSES),
                   filter_cfg=dict(filter_empty_gt=True), pipeline=pipeline)
        scope = 'mmdet'
    else:
        from mmaction.registry import DATASETS
        cfg = dict(type='VideoDataset', ann_file=ann, data_prefix=dict(video=data_root),
                   pipeline=pipeline)
        scope = 'mmaction'
    with DefaultScope.overwrite_default_scope(scope), \
            contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
        dataset = DATASETS.build(cfg)
        dataset.full_init()
    return dataset


# ------------------------------------------------------------ instrumentation
class Timer:
    """Accumulated seconds per label, only while ``recording``."""

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self.recording = False

    def add(self, label: str, dt: float) -> None:
        if self.recording:
            self.seconds[label] += dt
            self.calls[label] += 1


class Timed:
    """A transform whose ``__call__`` adds its wall time to a :class:`Timer`."""

    def __init__(self, transform, label: str, timer: Timer):
        self.transform, self.label, self.timer = transform, label, timer

    def __call__(self, results):
        start = time.perf_counter()
        out = self.transform(results)
        self.timer.add(self.label, time.perf_counter() - start)
        return out

    def __getattr__(self, name):  # repr, attributes of the wrapped transform
        return getattr(self.transform, name)


def _labels(transforms) -> List[str]:
    seen: Dict[str, int] = defaultdict(int)
    labels = []
    for t in transforms:
        name = type(t).__name__
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f'{name}#{seen[name]}')
    return labels


def instrument(dataset, timer: Timer) -> List[str]:
    """Wrap every transform of ``dataset.pipeline`` (and those inside
    MultiResolution) with a timer; returns the breakdown's row labels in order."""
    from mutual_mm.datasets.transforms import MultiResolution
    transforms = dataset.pipeline.transforms
    rows = []
    for i, (t, label) in enumerate(zip(list(transforms), _labels(transforms))):
        rows.append(label)
        if isinstance(t, MultiResolution):
            inner = []
            for pipe in t.pipelines:  # one Compose per scale, same transforms
                names = _labels(pipe.transforms)
                for j, name in enumerate(names):
                    pipe.transforms[j] = Timed(pipe.transforms[j], f'{label} > {name}', timer)
                inner = [f'{label} > {name}' for name in names]
            rows += inner + [f'{label} > copy + frame subset']
        transforms[i] = Timed(t, label, timer)
    return rows


# ----------------------------------------------------------------- measuring
def output_pixels(sample: dict) -> int:
    """Sum over views of the packed inputs' T x H x W (channels excluded)."""
    inputs = sample['inputs']
    views = inputs if isinstance(inputs, list) else [inputs]
    return sum(_pixels(v) for v in views)


def _pixels(t: torch.Tensor) -> int:
    # images: (3, H, W); clips: (num_clips, 3, T, H, W)
    if t.dim() == 3:
        return int(t.shape[1] * t.shape[2])
    return int(np.prod(t.shape)) // int(t.shape[-4])


def describe_views(sample: dict) -> List[str]:
    inputs = sample['inputs']
    views = inputs if isinstance(inputs, list) else [inputs]
    out = []
    for v in views:
        shape = tuple(v.shape)
        out.append('x'.join(str(s) for s in (shape[1:] if v.dim() == 3 else shape[2:])))
    return out


def run_task(task: str, args, data_dir: str) -> dict:
    from mmengine.dataset import pseudo_collate
    from mutual_mm.datasets.synthetic import make_coco_shapes, make_motion_videos
    root = osp.join(data_dir, task)
    t0 = time.perf_counter()
    if task == 'image':
        ann = make_coco_shapes(root, num_images=args.num_images, size=args.image_size,
                               seed=args.seed)
        pipelines = image_pipelines(IMAGE_SCALES)
        batch, source = args.image_batch, dict(
            generator='make_coco_shapes', num=args.num_images,
            size=list(args.image_size))
        views = dict(single=[list(IMAGE_SCALES[0])],
                     multi=[list(s) for s in IMAGE_SCALES])
    else:
        ann = make_motion_videos(root, num_videos=args.num_videos, size=args.video_size,
                                 num_frames=args.video_frames, seed=args.seed)
        pipelines = video_pipelines(VIDEO_SIZES, VIDEO_FRAMES)
        batch, source = args.video_batch, dict(
            generator='make_motion_videos', num=args.num_videos,
            size=list(args.video_size), frames=args.video_frames)
        views = dict(single=[[VIDEO_SIZES[0], VIDEO_FRAMES[0]]],
                     multi=[[s, f] for s in VIDEO_SIZES for f in VIDEO_FRAMES])
    gen_s = time.perf_counter() - t0

    datasets, timers, rows = {}, {}, {}
    for v in VARIANTS:
        datasets[v] = build_dataset(task, ann, root, pipelines[v])
        timers[v] = Timer()
        rows[v] = instrument(datasets[v], timers[v])
    n = len(datasets['single'])

    batch_s = {v: [] for v in VARIANTS}
    getitem_s = {v: 0.0 for v in VARIANTS}
    collate_s = {v: 0.0 for v in VARIANTS}
    shapes, pixels = {}, {}

    def load(v: str, indices, seed: int, record: bool):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        timers[v].recording = record
        ds = datasets[v]
        start = time.perf_counter()
        samples = [ds[i] for i in indices]
        mid = time.perf_counter()
        data = pseudo_collate(samples)
        end = time.perf_counter()
        timers[v].recording = False
        if v not in shapes:
            shapes[v] = describe_views(samples[0])
            pixels[v] = statistics.mean(output_pixels(s) for s in samples)
        del data, samples
        if record:
            batch_s[v].append(end - start)
            getitem_s[v] += mid - start
            collate_s[v] += end - mid

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    for r in range(args.warmup + args.repeats):
        gc.collect()
        indices = [(r * batch + k) % n for k in range(batch)]
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
        line = []
        for v in order:
            load(v, indices, args.seed * 1000 + r, record=r >= args.warmup)
            if r >= args.warmup:
                line.append(f'{v} {batch_s[v][-1] * 1e3:.0f} ms')
        if r >= args.warmup:
            print(f'  {task} round {r - args.warmup + 1}: ' + ', '.join(line), flush=True)
    elapsed = time.perf_counter() - t_start
    load_after = os.getloadavg()

    samples_total = batch * args.repeats
    result = dict(task=task, data=source, batch=batch, num_samples_in_dataset=n,
                  generation_s=gen_s, timing_wall_s=elapsed, loadavg_before=load_before,
                  loadavg_after=load_after, pipelines=pipelines, variants={})
    for v in VARIANTS:
        med = statistics.median(batch_s[v])
        total = sum(batch_s[v])
        pipe_top = sum(timers[v].seconds[label] for label in rows[v] if '>' not in label)
        breakdown = []
        for label in rows[v]:
            if label.endswith('> copy + frame subset'):
                outer = label.split(' > ')[0]
                inner = sum(s for k, s in timers[v].seconds.items()
                            if k.startswith(outer + ' > '))
                secs = timers[v].seconds[outer] - inner
            else:
                secs = timers[v].seconds[label]
            breakdown.append(dict(step=label, nested='>' in label,
                                  ms_per_sample=secs / samples_total * 1e3,
                                  share=secs / total))
        for label, secs in (('dataset (__getitem__ minus pipeline)',
                             getitem_s[v] - pipe_top),
                            ('pseudo_collate', collate_s[v])):
            breakdown.append(dict(step=label, nested=False,
                                  ms_per_sample=secs / samples_total * 1e3,
                                  share=secs / total))
        result['variants'][v] = dict(
            views=views[v], num_views=len(views[v]), packed_shapes=shapes[v],
            output_pixels_per_sample=pixels[v],
            median_batch_s=med, samples_per_s=batch / med,
            ms_per_sample=med / batch * 1e3, batch_s=batch_s[v], breakdown=breakdown)
    per_round = [m / s for m, s in zip(batch_s['multi'], batch_s['single'])]
    q = (statistics.quantiles(per_round, n=4, method='inclusive') if len(per_round) > 1
         else [per_round[0]] * 3)
    result['ratio_multi_over_single'] = dict(
        median_per_round=statistics.median(per_round), q1=q[0], q3=q[2],
        per_round=per_round,
        of_medians=(result['variants']['multi']['median_batch_s']
                    / result['variants']['single']['median_batch_s']),
        output_pixels=(result['variants']['multi']['output_pixels_per_sample']
                       / result['variants']['single']['output_pixels_per_sample']))
    return result


def print_task(r: dict) -> None:
    single, multi = r['variants']['single'], r['variants']['multi']
    ratio = r['ratio_multi_over_single']
    data = r['data']
    what = (f"{data['num']} x {data['size'][0]}x{data['size'][1]}"
            + (f" x {data['frames']} frames" if 'frames' in data else ''))
    print(f"\n{r['task']}s ({what}), batch {r['batch']}, load avg "
          f"{r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'variant':<8}{'views':>6}{'samples/s':>11}{'ms/sample':>11}"
          f"{'out px/sample':>15}  packed view shapes")
    for name, v in (('single', single), ('multi', multi)):
        shapes = ', '.join(v['packed_shapes'])
        if len(shapes) > 60:
            shapes = shapes[:57] + '...'
        print(f"{name:<8}{v['num_views']:>6}{v['samples_per_s']:>11.2f}"
              f"{v['ms_per_sample']:>11.1f}{v['output_pixels_per_sample']:>15.0f}  {shapes}")
    print(f"multi / single time: {ratio['median_per_round']:.2f} (median of per-round "
          f"ratios, IQR {ratio['q1']:.2f}-{ratio['q3']:.2f}; of medians "
          f"{ratio['of_medians']:.2f}); output pixels ratio {ratio['output_pixels']:.2f}")
    print(f"\nwhere the time goes ({r['task']}s; ms per sample, share of batch time)")
    steps = [b['step'] for b in multi['breakdown']]
    for b in single['breakdown']:
        if b['step'] not in steps:
            steps.insert(len(steps) - 2, b['step'])
    by = {name: {b['step']: b for b in v['breakdown']} for name, v in
          (('single', single), ('multi', multi))}
    print(f"{'step':<42}{'single ms':>10}{'share':>7}{'multi ms':>10}{'share':>7}")
    for step in steps:
        cells = []
        for name in ('single', 'multi'):
            b = by[name].get(step)
            cells.append(f"{b['ms_per_sample']:>10.2f}{b['share']:>7.1%}" if b
                         else f"{'-':>10}{'':>7}")
        label = ('  ' + step) if '>' in step else step
        print(f'{label:<42}' + ''.join(cells))


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger('mmengine').setLevel(logging.ERROR)
    tasks = [args.only] if args.only else ['image', 'video']
    if args.threads:
        import cv2
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix='bench_data_loading_')
        data_dir = tmp.name
    else:
        data_dir = args.data_dir
    print(f'data loading, num_workers=0 equivalent (dataset[i] + pseudo_collate in this '
          f'process), {args.repeats} rounds (+{args.warmup} warm-up), torch threads '
          f'{torch.get_num_threads()}')
    results = {}
    for task in tasks:
        results[task] = run_task(task, args, data_dir)
        print_task(results[task])
    if tmp is not None:
        tmp.cleanup()
    import cv2
    import mmaction
    import mmcv
    import mmdet
    import mmengine
    out = dict(
        benchmark='bench_data_loading',
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        python=platform.python_version(), torch=torch.__version__,
        mmcv=mmcv.__version__, mmengine=mmengine.__version__, mmdet=mmdet.__version__,
        mmaction=mmaction.__version__, opencv=cv2.__version__,
        cpu=_cpu_name(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
        cv2_threads=cv2.getNumThreads(),
        loader='dataset[i] for a batch of indices + mmengine pseudo_collate, in process '
               '(= DataLoader num_workers=0)',
        timing_note='per-transform times from a timer wrapped around each transform '
                    '__call__ (also inside MultiResolution); shares are of the batch time',
        args={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        tasks=results)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'\nwrote {osp.relpath(args.out)}')
    return 0


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == '__main__':
    sys.exit(main())
