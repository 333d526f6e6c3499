"""Data-loading throughput: the MultiResolution pipeline against the stock
single-resolution one and the loader of views made from the batch, and where
the time goes.

Two pipelines per task, identical up to their tail, through the real dataset
(``dataset[i]``) and mmengine's ``pseudo_collate`` in this process (what a
``DataLoader`` with ``num_workers=0`` does): the pipeline's own cost.

* images (generated COCO shapes with masks, ``--image-size``): ``LoadImageFromFile,
  LoadAnnotations(bbox, mask), RandomFlip``, then ``single``: ``Resize(1000x600) +
  PackDetInputs`` or ``multi``: ``MultiResolution`` over 1000x{600, 480, 360, 240}
  (the provided Mask R-CNN config), and ``batch_views`` (see below);
* videos (generated mp4, ``--video-size`` x ``--video-frames``): ``DecordInit,
  SampleFrames(8, 8), DecordDecode, Resize(-1, 256), RandomResizedCrop, Flip``,
  then ``single``: ``Resize(224, 224) + FormatShape + PackActionInputs`` or
  ``multi``: ``MultiResolution`` over {224, 178, 142} x {8, 5, 3} frames (the
  provided Slow-8x8 config); and, for both tasks, ``batch_views``: the loader of
  ``MutualLearningHook(batch_views=...)``, which is the stock ``single`` pipeline
  by construction (the views are made later, on the device, inside the training
  step: ``bench_mutual_step.py`` times that). It is timed as a variant of its own,
  a second copy of the same pipeline in the same rounds, so its ratios to
  ``single`` (the noise floor: ideally 1) and to ``multi`` are real paired
  measurements; its output is checked equal to ``single``'s.

Every round loads one batch with each variant back to back (first rotating),
same samples, same random draws. Reported: samples/s, the median of the
per-round ratios multi / single beside the ratio of output pixels (T x H x W
summed over views), the throughput of batch_views against single
(target >= 0.95) and against multi, and where the time goes: a timer around each
transform (also inside ``MultiResolution``, whose remainder is its per-view copy
and frame subset), ``dataset`` (``__getitem__`` minus the pipeline) and
``pseudo_collate``.

    .venv/bin/python benchmarks/bench_data_loading.py               # both tasks
    .venv/bin/python benchmarks/bench_data_loading.py --only image --repeats 20
    .venv/bin/python benchmarks/bench_data_loading.py --only video --threads 1 \\
        --out benchmarks/results/data_loading_batch_views_cpu.json

Output: tables, and ``--out`` (default ``benchmarks/results/data_loading_cpu.json``;
the pipelines run on the CPU, there is no ``--device``).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os.path as osp
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers MultiResolution)

IMAGE_SCALES = [(1000, 600), (1000, 480), (1000, 360), (1000, 240)]
VIDEO_SIZES = [224, 178, 142]
VIDEO_FRAMES = [8, 5, 3]
VARIANTS = ('single', 'multi')  # the breakdown's columns
TASK_VARIANTS = dict(image=VARIANTS + ('batch_views', ), video=VARIANTS + ('batch_views', ))
TARGET_BATCH_VIEWS_THROUGHPUT = 0.95  # samples/s of batch_views / single, at least
COPY = 'copy + frame subset'  # MultiResolution's own work, besides its transforms


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected WIDTHxHEIGHT, e.g. 640x480')
    return w, h


def parse_args(argv=None):
    p = common.arg_parser(__doc__, device=False, cudnn=False)
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
    p.add_argument('--data-dir', default=None,
                   help='where to generate the data (default: a temporary folder)')
    args = common.finish_args(p, p.parse_args(argv), 'data_loading_cpu',
                              positive=('num_images', 'image_batch', 'num_videos',
                                        'video_batch', 'repeats'), non_negative=('warmup', ))
    if args.video_frames < 8:
        p.error('--video-frames must be >= 8 (SampleFrames clip_len 8)')
    return args


# ---------------------------------------------------------------- pipelines
def image_pipelines(scales) -> Dict[str, list]:
    head = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='RandomFlip', prob=0.5)]
    single = head + [dict(type='Resize', scale=tuple(scales[0]), keep_ratio=True),
                     dict(type='PackDetInputs')]
    return dict(
        single=single,
        multi=head + [dict(type='MultiResolution', scales=[tuple(s) for s in scales],
                           transforms=[dict(type='Resize', keep_ratio=True),
                                       dict(type='PackDetInputs')])],
        batch_views=copy.deepcopy(single))  # the hook makes the views in the step


def video_pipelines(sizes, frames) -> Dict[str, list]:
    head = common.decoded_clip(frames[0], 8) + [
        dict(type='Resize', scale=(-1, 256)), dict(type='RandomResizedCrop'),
        dict(type='Flip', flip_ratio=0.5)]
    tail = [dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    single = head + [dict(type='Resize', scale=(sizes[0], sizes[0]), keep_ratio=False)] + tail
    return dict(
        single=single,
        multi=head + [dict(type='MultiResolution', scales=list(sizes), frames=list(frames),
                           transforms=[dict(type='Resize', keep_ratio=False)] + tail)],
        batch_views=copy.deepcopy(single))  # the hook makes the views in the step


def generate(task: str, args, root: str):
    """The task's generated data: (annotation file, what it is, batch size)."""
    from mutual_mm.datasets.synthetic import make_coco_shapes, make_motion_videos
    if task == 'image':
        ann = make_coco_shapes(root, num_images=args.num_images, size=args.image_size,
                               seed=args.seed)
        return ann, dict(generator='make_coco_shapes', num=args.num_images,
                         size=list(args.image_size)), args.image_batch
    ann = make_motion_videos(root, num_videos=args.num_videos, size=args.video_size,
                             num_frames=args.video_frames, seed=args.seed)
    return ann, dict(generator='make_motion_videos', num=args.num_videos,
                     size=list(args.video_size), frames=args.video_frames), args.video_batch


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
    else:
        from mmaction.registry import DATASETS
        cfg = common.video_dataset_cfg(ann, data_root, pipeline)
    scope = 'mmdet' if task == 'image' else 'mmaction'
    with DefaultScope.overwrite_default_scope(scope), \
            contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
        dataset = DATASETS.build(cfg)
        dataset.full_init()
    return dataset


# ----------------------------------------------------------- instrumentation
class Timed:
    """A transform whose ``__call__`` adds its wall time to ``seconds[label]``
    while ``recording[0]`` is true."""

    def __init__(self, transform, label: str, seconds: Dict[str, float], recording: list):
        self.transform, self.label = transform, label
        self.seconds, self.recording = seconds, recording

    def __call__(self, results):
        start = time.perf_counter()
        out = self.transform(results)
        if self.recording[0]:
            self.seconds[self.label] += time.perf_counter() - start
        return out

    def __getattr__(self, name):  # repr, attributes of the wrapped transform
        return getattr(self.transform, name)


def _labels(transforms, prefix: str = '') -> List[str]:
    """Transform names, numbered from their second occurrence (Resize#2)."""
    seen: Dict[str, int] = defaultdict(int)
    labels = []
    for t in transforms:
        name = type(t).__name__
        seen[name] += 1
        labels.append(prefix + (name if seen[name] == 1 else f'{name}#{seen[name]}'))
    return labels


def instrument(transforms: list, seconds: Dict[str, float], recording: list) -> List[str]:
    """Wrap every transform (and those inside MultiResolution) with a timer;
    the breakdown's row labels in order."""
    from mutual_mm.datasets.transforms import MultiResolution
    rows = []
    for i, label in enumerate(_labels(transforms)):
        rows.append(label)
        if isinstance(transforms[i], MultiResolution):
            for pipe in transforms[i].pipelines:  # one Compose per view, same transforms
                inner = _labels(pipe.transforms, f'{label} > ')
                pipe.transforms[:] = [Timed(t, name, seconds, recording)
                                      for t, name in zip(pipe.transforms, inner)]
            rows += inner + [f'{label} > {COPY}']
        transforms[i] = Timed(transforms[i], label, seconds, recording)
    return rows


# ----------------------------------------------------------------- measuring
class Variant:
    """One pipeline's dataset, its per-transform seconds and its batch times."""

    def __init__(self, task: str, ann: str, root: str, pipeline: list):
        self.dataset = build_dataset(task, ann, root, pipeline)
        self.seconds: Dict[str, float] = defaultdict(float)
        self.recording = [False]
        self.rows = instrument(self.dataset.pipeline.transforms, self.seconds, self.recording)
        self.batch_s: List[float] = []
        self.getitem_s = self.collate_s = 0.0
        self.first_batch = None  # what the packed views look like

    def load(self, indices, seed: int, timed: bool) -> None:
        """One batch, the random generators seeded alike for both variants."""
        from mmengine.dataset import pseudo_collate
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.recording[0] = timed
        start = time.perf_counter()
        samples = [self.dataset[i] for i in indices]
        mid = time.perf_counter()
        pseudo_collate(samples)
        end = time.perf_counter()
        self.recording[0] = False
        self.first_batch = self.first_batch or samples
        if timed:
            self.batch_s.append(end - start)
            self.getitem_s += mid - start
            self.collate_s += end - mid

    def breakdown(self, samples: int) -> List[dict]:
        """Each row's ms per sample and share of the batch time."""
        secs = dict(self.seconds)
        for label in self.rows:
            if label.endswith(COPY):  # the wrapper's time minus its transforms'
                outer = label.split(' > ')[0]
                secs[label] = secs[outer] - sum(v for k, v in self.seconds.items()
                                                if k.startswith(outer + ' > '))
        pipeline = sum(self.seconds[label] for label in self.rows if '>' not in label)
        secs['dataset (__getitem__ minus pipeline)'] = self.getitem_s - pipeline
        secs['pseudo_collate'] = self.collate_s
        total = sum(self.batch_s)
        return [dict(step=label, nested='>' in label, ms_per_sample=secs[label] / samples * 1e3,
                     share=secs[label] / total)
                for label in self.rows + ['dataset (__getitem__ minus pipeline)',
                                          'pseudo_collate']]

    def summary(self, batch: int, repeats: int, views: list) -> dict:
        def views_of(sample):
            inputs = sample['inputs']
            return inputs if isinstance(inputs, list) else [inputs]

        med = statistics.median(self.batch_s)
        # images (3, H, W), clips (num_clips, 3, T, H, W): shapes without channels
        shapes = [tuple(v.shape[1:] if v.dim() == 3 else v.shape[2:])
                  for v in views_of(self.first_batch[0])]
        return dict(views=views, num_views=len(views),
                    packed_shapes=['x'.join(map(str, s)) for s in shapes],
                    output_pixels_per_sample=statistics.mean(
                        sum(v.numel() // 3 for v in views_of(s)) for s in self.first_batch),
                    median_batch_s=med, samples_per_s=batch / med,
                    ms_per_sample=med / batch * 1e3, batch_s=self.batch_s,
                    breakdown=self.breakdown(batch * repeats))


def time_ratio(variants: Dict[str, Variant], summaries: dict, a: str, b: str) -> dict:
    """Batch time of ``a`` over ``b``, paired by round (> 1: ``a`` is slower;
    its throughput is ``b``'s divided by this), beside their output pixels."""
    ratio = common.paired_ratios(variants[a].batch_s, variants[b].batch_s)
    pixels = [summaries[v]['output_pixels_per_sample'] for v in (a, b)]
    return dict(median_per_round=ratio['median'], q1=ratio['q1'], q3=ratio['q3'],
                per_round=ratio['per_round'], of_medians=ratio['of_medians'],
                output_pixels=pixels[0] / pixels[1])


def same_output(a: Variant, b: Variant) -> bool:
    """Whether two variants packed the same inputs for their first batch."""
    return all(torch.equal(x['inputs'], y['inputs'])
               for x, y in zip(a.first_batch, b.first_batch))


def batch_views_report(variants: Dict[str, Variant], summaries: dict) -> dict:
    """The batch_views loader (the stock pipeline) against single and multi, as
    throughput ratios (samples/s over samples/s: the inverse time ratios)."""
    over_single = time_ratio(variants, summaries, 'batch_views', 'single')
    over_multi = time_ratio(variants, summaries, 'batch_views', 'multi')
    throughput = {k: 1 / r['median_per_round'] for k, r in (('over_single', over_single),
                                                             ('over_multi', over_multi))}
    return dict(
        loader='the stock single-resolution pipeline (by construction; timed as its own '
               'variant); the views are made in the training step (bench_mutual_step.py)',
        output_equals_single=same_output(variants['batch_views'], variants['single']),
        ratio_batch_views_over_single=over_single, ratio_batch_views_over_multi=over_multi,
        throughput_ratio=throughput,
        target=dict(throughput_over_single=TARGET_BATCH_VIEWS_THROUGHPUT,
                    met=throughput['over_single'] >= TARGET_BATCH_VIEWS_THROUGHPUT))


def run_task(task: str, args, data_dir: str) -> dict:
    root = osp.join(data_dir, task)
    start_s = time.perf_counter()
    ann, source, batch = generate(task, args, root)
    generation_s = time.perf_counter() - start_s
    if task == 'image':
        pipelines = image_pipelines(IMAGE_SCALES)
        views = dict(single=[list(IMAGE_SCALES[0])], multi=[list(s) for s in IMAGE_SCALES],
                     batch_views=[list(IMAGE_SCALES[0])])  # what it loads
    else:
        pipelines = video_pipelines(VIDEO_SIZES, VIDEO_FRAMES)
        views = dict(single=[[VIDEO_SIZES[0], VIDEO_FRAMES[0]]],
                     multi=[[s, f] for s in VIDEO_SIZES for f in VIDEO_FRAMES],
                     batch_views=[[VIDEO_SIZES[0], VIDEO_FRAMES[0]]])  # what it loads
    names = TASK_VARIANTS[task]
    variants = {v: Variant(task, ann, root, pipelines[v]) for v in names}
    n = len(variants['single'].dataset)

    def one_round(r: int, timed: bool) -> None:
        indices = [(r * batch + k) % n for k in range(batch)]
        for name in common.rotated(names, r):
            variants[name].load(indices, args.seed * 1000 + r, timed)
        if timed:
            print(f'  {task} round {r - args.warmup + 1}: ' + ', '.join(
                f'{v} {variants[v].batch_s[-1] * 1e3:.0f} ms' for v in names), flush=True)

    watch = common.run_rounds(args.warmup, args.repeats, one_round)
    summaries = {v: variants[v].summary(batch, args.repeats, views[v]) for v in names}
    extra = {}
    if 'batch_views' in names:
        extra['batch_views'] = dict(batch_views_report(variants, summaries),
                                    views_made_in_step=views['multi'])
    return dict(task=task, data=source, batch=batch, num_samples_in_dataset=n,
                generation_s=generation_s, **watch.as_dict(), pipelines=pipelines,
                variants=summaries,
                ratio_multi_over_single=time_ratio(variants, summaries, 'multi', 'single'),
                **extra)


def print_task(r: dict) -> None:
    variants, ratio, data = r['variants'], r['ratio_multi_over_single'], r['data']
    what = (f"{data['num']} x {data['size'][0]}x{data['size'][1]}"
            + (f" x {data['frames']} frames" if 'frames' in data else ''))
    print(f"\n{r['task']}s ({what}), batch {r['batch']}, {common.describe_load(r)}")
    print(f"{'variant':<12}{'views':>6}{'samples/s':>11}{'ms/sample':>11}"
          f"{'out px/sample':>15}  packed view shapes")
    for name, v in variants.items():
        shapes = ', '.join(v['packed_shapes'])
        shapes = shapes if len(shapes) <= 60 else shapes[:57] + '...'
        print(f"{name:<12}{v['num_views']:>6}{v['samples_per_s']:>11.2f}"
              f"{v['ms_per_sample']:>11.1f}{v['output_pixels_per_sample']:>15.0f}  {shapes}")
    print(f"multi / single time: {ratio['median_per_round']:.2f} (median of per-round "
          f"ratios, IQR {ratio['q1']:.2f}-{ratio['q3']:.2f}; of medians "
          f"{ratio['of_medians']:.2f}); output pixels ratio {ratio['output_pixels']:.2f}")
    if 'batch_views' in r:
        bv = r['batch_views']
        print(f"batch_views loader (= the stock pipeline; output equal to single's: "
              f"{bv['output_equals_single']}): samples/s x"
              f"{bv['throughput_ratio']['over_single']:.3f} of single (target >= "
              f"{bv['target']['throughput_over_single']}: "
              f"{'PASS' if bv['target']['met'] else 'FAIL'}), x"
              f"{bv['throughput_ratio']['over_multi']:.2f} of multi (medians of "
              f"per-round ratios)")
    print(f"\nwhere the time goes ({r['task']}s; ms per sample, share of batch time"
          + ('; batch_views runs the single pipeline' if 'batch_views' in r else '') + ')')
    by = {name: {b['step']: b for b in v['breakdown']} for name, v in variants.items()}
    steps = list(by['multi'])
    for step in by['single']:  # the single tail's steps before dataset and collate
        if step not in steps:
            steps.insert(len(steps) - 2, step)
    print(f"{'step':<42}{'single ms':>10}{'share':>7}{'multi ms':>10}{'share':>7}")
    for step in steps:
        cells = [f"{b['ms_per_sample']:>10.2f}{b['share']:>7.1%}" if b else f"{'-':>10}{'':>7}"
                 for b in (by[name].get(step) for name in VARIANTS)]
        print(f"{'  ' + step if '>' in step else step:<42}" + ''.join(cells))


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    import cv2
    if args.threads:
        cv2.setNumThreads(args.threads)
    print(f'data loading, num_workers=0 equivalent (dataset[i] + pseudo_collate in this '
          f'process), {args.repeats} rounds (+{args.warmup} warm-up), '
          f'{common.describe_machine(device)}')
    with tempfile.TemporaryDirectory(prefix='bench_data_loading_') as tmp:
        results = {}
        for task in [args.only] if args.only else ['image', 'video']:
            results[task] = run_task(task, args, args.data_dir or tmp)
            print_task(results[task])
    common.save_json(args.out, dict(
        **common.environment('bench_data_loading', device,
                             rename=dict(device_name='cpu', num_threads='torch_threads')),
        opencv=cv2.__version__, cv2_threads=cv2.getNumThreads(),
        loader='dataset[i] for a batch of indices + mmengine pseudo_collate, in process '
               '(= DataLoader num_workers=0)',
        timing_note='per-transform times from a timer wrapped around each transform '
                    '__call__ (also inside MultiResolution); shares are of the batch time',
        args={k: list(v) if isinstance(v, tuple) else v for k, v in vars(args).items()},
        tasks=results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
