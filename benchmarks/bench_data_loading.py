"""Data-loading throughput: ``MultiResolution`` against the stock single-resolution
pipeline and the loader of views made from the batch, and where the time goes.

Per task, pipelines identical up to their tail, through the real dataset and
``pseudo_collate`` in this process (a ``DataLoader`` with ``num_workers=0``):
images (generated COCO shapes with masks; the provided Mask R-CNN's 1000x{600,
480, 360, 240}) and videos (generated mp4, ``SampleFrames(8, 8)``, ``Resize(-1,
256)``, ``RandomResizedCrop``, ``Flip``; the provided Slow-8x8's {224, 178, 142} x
{8, 5, 3} frames). ``single``: the first view's Resize and packing; ``multi``:
``MultiResolution``; ``batch_views``: the loader of ``MutualLearningHook(
batch_views=...)``, which is ``single`` by construction (the views are made in
the step: ``bench_mutual_step.py``), timed as a second copy in the same rounds:
its ratio to ``single`` is the noise floor (target >= 0.95 of its samples/s);
its output is checked equal to ``single``'s. Each round loads one batch per
variant (order rotating; same samples and random draws). Reported: samples/s,
per-round time ratios beside the ratio of output pixels, and a timer around each
transform (also inside ``MultiResolution``, whose remainder is its per-view copy
and frame subset).

    .venv/bin/python benchmarks/bench_data_loading.py --threads 1   # both tasks
    .venv/bin/python benchmarks/bench_data_loading.py --only video --threads 1 \\
        --out benchmarks/results/data_loading_batch_views_cpu.json

Output: tables, and ``--out`` (default ``benchmarks/results/data_loading_cpu.json``).
"""
from __future__ import annotations

import contextlib
import copy
import io
import os.path as osp
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers MultiResolution)

IMAGE_SCALES = [(1000, 600), (1000, 480), (1000, 360), (1000, 240)]
VIDEO_SIZES, VIDEO_FRAMES = [224, 178, 142], [8, 5, 3]
VARIANTS = ('single', 'multi', 'batch_views')
TARGET_BATCH_VIEWS_THROUGHPUT = 0.95  # samples/s of batch_views / single, at least
COPY = 'copy + frame subset'  # MultiResolution's own work, besides its transforms


def parse_args(argv=None):
    p = common.arg_parser(__doc__, device=False, cudnn=False)
    size = lambda text: tuple(int(v) for v in text.lower().split('x'))  # noqa: E731
    p.add_argument('--only', choices=('image', 'video'), default=None)
    p.add_argument('--image-size', type=size, default=(640, 480), help='WxH')
    p.add_argument('--num-images', type=int, default=64)
    p.add_argument('--image-batch', type=int, default=4)
    p.add_argument('--video-size', type=size, default=(320, 240), help='WxH')
    p.add_argument('--video-frames', type=int, default=64, help='SampleFrames 8x8 spans 64')
    p.add_argument('--num-videos', type=int, default=16)
    p.add_argument('--video-batch', type=int, default=4)
    p.add_argument('--repeats', type=int, default=20, help='timed rounds per task')
    p.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    return common.finish_args(p, p.parse_args(argv), 'data_loading_cpu',
                              positive=('num_images', 'image_batch', 'num_videos',
                                        'video_batch', 'repeats'), non_negative=('warmup',))


def pipelines(task: str) -> dict:
    if task == 'image':
        head = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='RandomFlip', prob=0.5)]
        resize, tail, views = dict(type='Resize', keep_ratio=True), [dict(type='PackDetInputs')], \
            dict(scales=IMAGE_SCALES)
    else:
        head = common.decoded_clip(VIDEO_FRAMES[0], 8) + [
            dict(type='Resize', scale=(-1, 256)), dict(type='RandomResizedCrop'),
            dict(type='Flip', flip_ratio=0.5)]
        resize = dict(type='Resize', keep_ratio=False)
        tail = [dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
        views = dict(scales=VIDEO_SIZES, frames=VIDEO_FRAMES)
    first = views['scales'][0]
    single = head + [dict(resize, scale=first if task == 'image' else (first, first))] + tail
    return dict(single=single, batch_views=copy.deepcopy(single),
                multi=head + [dict(type='MultiResolution', **views, transforms=[resize] + tail)])


def generate(task: str, args, root: str) -> str:
    """The task's generated data; its annotation file."""
    from tools.data_generators.shapes_and_motion import make_coco_shapes, make_motion_videos
    if task == 'image':
        return make_coco_shapes(root, num_images=args.num_images, size=args.image_size,
                                seed=args.seed)
    return make_motion_videos(root, num_videos=args.num_videos, size=args.video_size,
                              num_frames=args.video_frames, seed=args.seed)


def build_dataset(task: str, ann: str, root: str, pipeline: list):
    """The host library's own dataset, built in its default scope (so the
    transforms inside MultiResolution are the host's too)."""
    from mmengine.registry import DefaultScope
    if task == 'image':
        from mmdet.registry import DATASETS

        from tools.data_generators.shapes_and_motion import SHAPE_CLASSES
        cfg = dict(type='CocoDataset', data_root=root, ann_file=ann, data_prefix=dict(img=''),
                   metainfo=dict(classes=SHAPE_CLASSES), filter_cfg=dict(filter_empty_gt=True),
                   pipeline=pipeline)
    else:
        from mmaction.registry import DATASETS
        cfg = common.video_dataset_cfg(ann, root, pipeline)
    with DefaultScope.overwrite_default_scope('mmdet' if task == 'image' else 'mmaction'), \
            contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
        dataset = DATASETS.build(cfg)
        dataset.full_init()
    return dataset


class Variant:
    """One pipeline's dataset with a timer around each transform (also inside
    MultiResolution), and its batch times."""

    def __init__(self, dataset):
        from mutual_mm.datasets.transforms import MultiResolution
        self.dataset, self.seconds, self.recording = dataset, defaultdict(float), False
        self.batch_s, self.getitem_s, self.collate_s, self.first = [], 0.0, 0.0, None
        self.rows = []
        transforms = dataset.pipeline.transforms
        for i, label in enumerate(self._labels(transforms)):
            self.rows.append(label)
            if isinstance(transforms[i], MultiResolution):
                for pipe in transforms[i].pipelines:  # one Compose per view
                    inner = self._labels(pipe.transforms, f'{label} > ')
                    pipe.transforms[:] = [self._timed(t, n) for t, n in
                                          zip(pipe.transforms, inner)]
                self.rows += inner + [f'{label} > {COPY}']
            transforms[i] = self._timed(transforms[i], label)

    @staticmethod
    def _labels(transforms, prefix=''):
        """Transform names, numbered from their second occurrence (Resize#2)."""
        seen = Counter()
        labels = []
        for t in transforms:
            seen[type(t).__name__] += 1
            n = seen[type(t).__name__]
            labels.append(prefix + type(t).__name__ + (f'#{n}' if n > 1 else ''))
        return labels

    def _timed(self, transform, label):
        def call(results):
            start = time.perf_counter()
            out = transform(results)
            if self.recording:
                self.seconds[label] += time.perf_counter() - start
            return out
        return call

    def load(self, indices, seed: int, timed: bool) -> None:
        """One batch, the random generators seeded alike for every variant."""
        from mmengine.dataset import pseudo_collate
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.recording = timed
        start = time.perf_counter()
        samples = [self.dataset[i] for i in indices]
        mid = time.perf_counter()
        pseudo_collate(samples)
        end = time.perf_counter()
        self.recording, self.first = False, self.first or samples
        if timed:
            self.batch_s.append(end - start)
            self.getitem_s += mid - start
            self.collate_s += end - mid

    def summary(self, batch: int, repeats: int) -> dict:
        secs = dict(self.seconds)
        for label in self.rows:
            if label.endswith(COPY):  # the wrapper's time minus its transforms'
                outer = label.split(' > ')[0]
                secs[label] = secs[outer] - sum(v for k, v in self.seconds.items()
                                                if k.startswith(outer + ' > '))
        rows = self.rows + ['dataset (__getitem__ minus pipeline)', 'pseudo_collate']
        secs[rows[-2]] = self.getitem_s - sum(self.seconds[k] for k in self.rows if '>' not in k)
        secs[rows[-1]] = self.collate_s
        views = [v for s in self.first
                 for v in (s['inputs'] if isinstance(s['inputs'], list) else [s['inputs']])]
        med = statistics.median(self.batch_s)
        return dict(packed_shapes=sorted({'x'.join(map(str, v.shape[-3:])) for v in views}),
                    output_pixels_per_sample=sum(v.numel() // 3 for v in views) / len(self.first),
                    median_batch_s=med, samples_per_s=batch / med,
                    ms_per_sample=med / batch * 1e3, batch_s=self.batch_s,
                    breakdown=[dict(step=k, ms_per_sample=secs[k] / (batch * repeats) * 1e3,
                                    share=secs[k] / sum(self.batch_s)) for k in rows])


def run_task(task: str, args, root: str) -> dict:
    batch = args.image_batch if task == 'image' else args.video_batch
    pipes, ann = pipelines(task), generate(task, args, root)
    variants = {v: Variant(build_dataset(task, ann, root, pipes[v])) for v in VARIANTS}
    n = len(variants['single'].dataset)

    def one_round(r: int, timed: bool) -> None:
        for name in common.rotated(VARIANTS, r):
            variants[name].load([(r * batch + k) % n for k in range(batch)],
                                args.seed * 1000 + r, timed)

    watch = common.run_rounds(args.warmup, args.repeats, one_round)
    out = {v: variants[v].summary(batch, args.repeats) for v in VARIANTS}

    def ratio(a, b):  # batch time of a over b, paired by round, and their output pixels
        r = common.paired_ratios(variants[a].batch_s, variants[b].batch_s)
        return dict(r, output_pixels=out[a]['output_pixels_per_sample']
                    / out[b]['output_pixels_per_sample'])

    over_single = 1 / ratio('batch_views', 'single')['median']
    return dict(task=task, batch=batch, samples=n, **watch.as_dict(), pipelines=pipes,
                variants=out, ratio_multi_over_single=ratio('multi', 'single'),
                batch_views=dict(
                    output_equals_single=all(torch.equal(x['inputs'], y['inputs']) for x, y in
                                             zip(variants['batch_views'].first,
                                                 variants['single'].first)),
                    throughput_over_single=over_single,
                    throughput_over_multi=1 / ratio('batch_views', 'multi')['median'],
                    target_met=over_single >= TARGET_BATCH_VIEWS_THROUGHPUT))


def print_task(r: dict) -> None:
    ratio, bv = r['ratio_multi_over_single'], r['batch_views']
    print(f"\n{r['task']}s, batch {r['batch']}, {common.describe_load(r)}")
    for name, v in r['variants'].items():
        print(f"{name:<12}{v['samples_per_s']:>9.2f} samples/s{v['ms_per_sample']:>9.1f} ms/sample"
              f"{v['output_pixels_per_sample']:>12.0f} px/sample  {', '.join(v['packed_shapes'])}")
    print(f"multi / single time: {ratio['median']:.2f} (IQR {ratio['q1']:.2f}-{ratio['q3']:.2f}); "
          f"output pixels x{ratio['output_pixels']:.2f}; batch_views samples/s "
          f"x{bv['throughput_over_single']:.3f} of single (target >= "
          f"{TARGET_BATCH_VIEWS_THROUGHPUT}: {'PASS' if bv['target_met'] else 'FAIL'}; output "
          f"equal: {bv['output_equals_single']}), x{bv['throughput_over_multi']:.2f} of multi")
    print(f"{'where the time goes':<44}{'single ms':>10}{'share':>7}{'multi ms':>10}{'share':>7}")
    by = {n: {b['step']: b for b in r['variants'][n]['breakdown']} for n in ('single', 'multi')}
    for step in dict.fromkeys([*by['multi'], *by['single']]):
        print(f'{step:<44}' + ''.join(f"{b['ms_per_sample']:>10.2f}{b['share']:>7.1%}" if b
                                      else f"{'-':>10}{'':>7}"
                                      for b in (by[n].get(step) for n in ('single', 'multi'))))


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    import cv2
    if args.threads:
        cv2.setNumThreads(args.threads)
    print(f'data loading in this process (= num_workers=0), {args.repeats} rounds '
          f'(+{args.warmup} warm-up), {common.describe_machine(device)}')
    with tempfile.TemporaryDirectory(prefix='bench_data_loading_') as tmp:
        results = {}
        for task in [args.only] if args.only else ['image', 'video']:
            results[task] = run_task(task, args, osp.join(tmp, task))
            print_task(results[task])
    common.save_json(args.out, dict(
        **common.environment('bench_data_loading', device,
                             rename=dict(device_name='cpu', num_threads='torch_threads')),
        opencv=cv2.__version__, cv2_threads=cv2.getNumThreads(),
        args={k: list(v) if isinstance(v, tuple) else v for k, v in vars(args).items()},
        tasks=results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
