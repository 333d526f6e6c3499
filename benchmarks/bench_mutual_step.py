"""Wall time of one MutualNet training step against its members and a plain step.

On the stock SlowOnly R50 recognizer (mmaction2 config, backbone swapped to
``SlimResNet3dSlowOnly``) with ``MutualLearningHook`` (widths [0.63, 1.0], KL
distillation) and ``MultiResolution`` views {S, 0.8S, 0.63S} x {T, 0.63T, 0.4T}
frames (paper section 6.5), on one fixed batch and one seeded cohort (full,
min, 2 random), with a real ``OptimWrapper(SGD)``, four variants run
round-robin (their order rotating), each through the step's public interface
(:class:`~mutual_mm.engine.MutualStep`): ``hooked``, one ``train_step`` of the
cohort; ``members``, each member alone (a one-member cohort: its view, its loss
forward, backward, optimizer step; sub-networks then take their cross-entropy,
which costs what the KL to the full network's logits does), the members summed;
``plain``, the stock full-width ``train_step`` on view 0; ``batch_views``, the
step of ``MutualLearningHook(batch_views=dict(scales, frames))``: the same model
and cohort fed one batch of the stock single-resolution pipeline (S x T frames),
the views made in the step from the preprocessed batch by its ``BatchViews``
(its ``make`` timed inside the step). Reported: medians, the medians of the
per-repeat ratios (target: hooked <= 1.10 x members), hooked / plain beside its
FLOPs-expected value, sum(member FLOPs) / full FLOPs (forward FLOPs of backbone +
head by mmengine's FlopAnalyzer at each member's width and view), batch_views /
hooked, and the share of the batch_views step spent making the views (median
over repeats; target <= 3 %).

``--model mask-rcnn`` measures the batch views on a detector: the provided
MutualNet Mask R-CNN R50-FPN config (the stock mmdet one, backbone swapped to
``SlimResNet``, its widths [0.7, 1.0] and ``MultiResolution`` views
1000x{600, 480, 360, 240} scaled to the short edge ``--size``) on generated
COCO-like images (4:3, ``--objects`` shapes at most, with masks). Three
variants, round-robin: ``hooked`` (pipeline views), ``batch_views`` (the stock
pipeline's batch, views made in the step: keep-ratio resize, boxes and masks
rescaled) and ``plain``; reported: batch_views / hooked and the share of the
batch_views step spent making the views (target <= 3 %). No members variant
nor FLOPs (section 3's question is asked of Slow-8x8).

``--steady-state`` instead times ``--steady-iters`` consecutive hooked steps with
cudnn.benchmark on and a new cohort each (as training draws them): each (width,
view) not seen before is a set of convolution shapes cudnn benchmarks first.
Reported: the step time at iteration 20 and at the last (and the medians of the
10 iterations ending there), and the mean time of iterations that met a new
(width, view) against the others. On the CPU it shows only the warm-up.

    .venv/bin/python benchmarks/bench_mutual_step.py            # CPU-sized defaults
    .venv/bin/python benchmarks/bench_mutual_step.py --device cuda --size 224 \\
        --batch 8 --cudnn-benchmark
    .venv/bin/python benchmarks/bench_mutual_step.py --device cuda --size 224 \\
        --batch 8 --steady-state                       # GPU steady state
    .venv/bin/python benchmarks/bench_mutual_step.py --steady-state --steady-iters 40
    .venv/bin/python benchmarks/bench_mutual_step.py --model mask-rcnn --size 360

Output: ``--out`` (default ``benchmarks/results/mutual_step[_steady]_<device>.json``;
``mutual_step_batch_views_maskrcnn_<device>.json`` for ``--model mask-rcnn``).
"""
from __future__ import annotations

import copy
import math
import os.path as osp
import random
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (registers the transforms, hook, backbones)
from mutual_mm.engine import Member, MutualStep, sample_cohort  # noqa: E402

SLOWONLY = ('mmaction::recognition/slowonly/'
            'slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py')
WIDTH_RANGE = (0.63, 1.0)
WIDTH_STEP = 0.05
NUM_RANDOM = 2
TARGET_HOOKED_OVER_MEMBERS = 1.10
TARGET_VIEW_MAKING_SHARE = 0.03
MASK_RCNN = 'configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py'
DET_SHORT_EDGES = (600, 480, 360, 240)  # the provided config's 1000x{...} scales


def parse_args(argv=None):
    p = common.arg_parser(__doc__)
    p.add_argument('--model', choices=('slowonly', 'mask-rcnn'), default='slowonly')
    p.add_argument('--size', type=int, default=None,
                   help='full-network short edge S (default 96, mask-rcnn 360); views '
                        'use S, 0.8S, 0.63S (mask-rcnn: S, 0.8S, 0.6S, 0.4S)')
    p.add_argument('--objects', type=int, default=8,
                   help='mask-rcnn: at most this many shapes per image (1 + uniform)')
    p.add_argument('--frames', type=int, default=8,
                   help='full-network frames T; views use T, 0.63T, 0.4T')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1,
                   help='untimed round-robin rounds before the timed repeats')
    p.add_argument('--lr', type=float, default=None,
                   help='SGD learning rate (default 0.01; mask-rcnn 1e-4: from random '
                        'init it diverges on the one repeated batch at 0.01)')
    p.add_argument('--steady-state', action='store_true',
                   help='time --steady-iters consecutive hooked steps (fresh cohort each, '
                        'cudnn.benchmark on) and report iteration 20 vs the last')
    p.add_argument('--steady-iters', type=int, default=200)
    args = p.parse_args(argv)
    args.size = args.size or (96 if args.model == 'slowonly' else 360)
    args.lr = args.lr if args.lr is not None else (0.01 if args.model == 'slowonly' else 1e-4)
    if args.model == 'mask-rcnn' and args.steady_state:
        p.error('--steady-state is measured on --model slowonly')
    common.finish_args(p, args, 'mutual_step_steady_{device}' if args.steady_state
                       else 'mutual_step_{device}' if args.model == 'slowonly'
                       else 'mutual_step_batch_views_maskrcnn_{device}',
                       positive=('size', 'frames', 'batch', 'repeats'), non_negative=('warmup', ))
    if args.steady_state and args.steady_iters < 2:
        p.error('--steady-iters must be >= 2')
    return args


# ------------------------------------------------------------------- set-up
PACK = [dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]


def build_cfg(work_dir: str, data_root: str, scales, frames, batch: int, seed: int,
              **unused):
    """The stock SlowOnly R50 Kinetics config with SlimResNet3dSlowOnly,
    MultiResolution (spatial x temporal) and MutualLearningHook, on generated
    mp4 clips."""
    from tools.data_generators.shapes_and_motion import MOTION_CLASSES, make_motion_videos
    from mutual_mm.utils import load_config
    cfg = common.runner_cfg(load_config(SLOWONLY), work_dir, seed)
    height = max(48, scales[0])
    ann = make_motion_videos(data_root, num_videos=max(4, batch),
                             size=(2 * ((height * 4 // 3 + 1) // 2), height),
                             num_frames=2 * frames[0] + 8, seed=seed)
    cfg.model.backbone.type = 'SlimResNet3dSlowOnly'
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.num_classes = len(MOTION_CLASSES)
    cfg.model.cls_head.dropout_ratio = 0
    views = dict(type='MultiResolution', scales=list(scales), frames=list(frames),
                 transforms=[dict(type='Resize', keep_ratio=False)] + PACK)
    pipeline = common.decoded_clip(frames[0], 2) + [views]
    cfg.train_dataloader = common.loader_cfg(
        common.video_dataset_cfg(ann, data_root, pipeline), batch, shuffle=False)
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.custom_hooks = [dict(type='MutualLearningHook', width_range=WIDTH_RANGE,
                             width_step=WIDTH_STEP, num_random=NUM_RANDOM, distill='kl')]
    return cfg


def det_views(size: int):
    """The provided Mask R-CNN config's views 1000x{600, 480, 360, 240}, their
    short edge 600 scaled to ``size`` (long edges even)."""
    return [(2 * round(500 * size / 600), 2 * round(s * size / 1200))
            for s in DET_SHORT_EDGES], None


def build_det_cfg(work_dir: str, data_root: str, scales, frames, batch: int, seed: int,
                  objects: int = 8):
    """The provided MutualNet Mask R-CNN R50-FPN config (stock mmdet config,
    SlimResNet, MultiResolution, the hook) at ``scales``, on generated 4:3
    COCO-like images whose short edge is the full view's."""
    from tools.data_generators.shapes_and_motion import SHAPE_CLASSES, make_coco_shapes
    from mutual_mm.utils import load_config
    cfg = common.runner_cfg(load_config(osp.join(common.ROOT, MASK_RCNN)), work_dir, seed)
    short = scales[0][1]
    ann = make_coco_shapes(data_root, num_images=max(4, batch), seed=seed,
                           size=(short * 4 // 3, short), max_objects=objects)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = len(SHAPE_CLASSES)
    cfg.model.roi_head.mask_head.num_classes = len(SHAPE_CLASSES)
    pipeline = copy.deepcopy(cfg.train_pipeline)
    pipeline[-1]['scales'] = [list(s) for s in scales]
    cfg.train_dataloader = common.loader_cfg(
        dict(type='CocoDataset', data_root=data_root, ann_file=ann, data_prefix=dict(img=''),
             metainfo=dict(classes=SHAPE_CLASSES), filter_cfg=dict(filter_empty_gt=True),
             pipeline=pipeline), batch, shuffle=False)
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] == 'MutualLearningHook']
    return cfg


def stock_det_dataset(cfg, scale):
    """The detection train dataset with the stock single-resolution pipeline:
    MultiResolution replaced by its tail at the full view's ``scale``."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    multi = dataset.pipeline.pop()
    tail = copy.deepcopy(multi['transforms'])
    next(t for t in tail if t['type'] == 'Resize')['scale'] = tuple(scale)
    dataset.pipeline.extend(tail)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(dataset)


def stock_dataset(cfg, scale: int):
    """The train dataset of ``cfg`` with the stock single-resolution pipeline:
    MultiResolution replaced by its full view (``scale`` square, every frame);
    what ``MutualLearningHook(batch_views=...)`` trains on."""
    from mmaction.registry import DATASETS
    from mmengine.registry import DefaultScope
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset.pipeline = dataset.pipeline[:-1] + [
        dict(type='Resize', scale=(scale, scale), keep_ratio=False)] + PACK
    with DefaultScope.overwrite_default_scope('mmaction'):
        return DATASETS.build(dataset)


def load_batch(dataset, batch: int, seed: int) -> dict:
    """``batch`` samples collated, the random draws seeded (so two pipelines
    with the same head sample the same clips)."""
    import numpy as np
    from mmengine.dataset import pseudo_collate
    random.seed(seed)
    np.random.seed(seed)
    return pseudo_collate([dataset[i % len(dataset)] for i in range(batch)])


#: per --model: (views of size S / frames T, config builder, stock dataset, the
#: model as the results name it)
TASKS = {
    'slowonly': (lambda a: common.view_sizes(a.size, a.frames), build_cfg, stock_dataset,
                 SLOWONLY + ' (backbone SlimResNet3dSlowOnly)'),
    'mask-rcnn': (lambda a: det_views(a.size), build_det_cfg, stock_det_dataset,
                  MASK_RCNN + ' (mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py, backbone '
                  'SlimResNet)'),
}


class Steps:
    """The model, its mutual step (built as ``MutualLearningHook`` builds it, from
    the config's hook arguments) and one fixed batch; each variant is a method,
    all through :class:`MutualStep`'s public interface."""

    def __init__(self, args, device, tmp: str):
        from mmengine.logging import MMLogger
        from mmengine.optim import OptimWrapper
        from mmengine.runner import Runner

        from mutual_mm.engine import MutualLearningHook, split_views
        views_of, cfg_of, stock_of, self.model_name = TASKS[args.model]
        self.scales, self.frames = views_of(args)
        cfg = cfg_of(osp.join(tmp, 'work'), osp.join(tmp, 'data'), self.scales,
                     self.frames, args.batch, args.seed, objects=args.objects)
        runner = Runner.from_cfg(copy.deepcopy(cfg))
        MMLogger.get_current_instance().setLevel('WARNING')
        self.model = runner.model.to(device).train()
        hook = next(h for h in runner.hooks if isinstance(h, MutualLearningHook))
        self.grid = hook.grid
        self.step = MutualStep.of(self.model, runner.train_dataloader.dataset, hook.grid,
                                  hook.num_random, hook.distill)
        self.distill = self.step.distill
        assert self.distill == ('kl' if args.model == 'slowonly' else 'gt'), self.distill
        self.data = load_batch(runner.train_dataloader.dataset, args.batch, args.seed)
        self.views = split_views(self.data, self.step.num_views)
        # batch_views: the stock pipeline's batch, and the step made for it
        stock = stock_of(cfg, self.scales[0])
        self.stock_data = load_batch(stock, args.batch, args.seed)
        self.batch_step = MutualStep.of(
            self.model, stock, hook.grid, hook.num_random, hook.distill,
            batch_views=dict(scales=self.scales, frames=self.frames))
        assert self.batch_step.view_source.views == self.step.view_source.views
        self.batch_step.view_source.make = self._timed(self.batch_step.view_source.make)
        self.stock_equals_view0 = all(
            torch.equal(a, b) for a, b in zip(self.stock_data['inputs'], self.views[0]['inputs']))
        self.view_making_s, self.member_s = [], {}
        self.device = device
        self.optim_wrapper = OptimWrapper(torch.optim.SGD(self.model.parameters(),
                                                          lr=args.lr, momentum=0.9))
        self.losses = []

    def _timed(self, make):
        """``make`` whose seconds (device synchronised around each call) add up
        in the last entry of ``view_making_s``."""

        def timed_make(batch: dict, index: int) -> dict:
            common.sync(self.device)
            start_s = time.perf_counter()
            view = make(batch, index)
            common.sync(self.device)
            self.view_making_s[-1] += time.perf_counter() - start_s
            return view

        return timed_make

    def describe(self, member: Member) -> dict:
        scale, count = self.step.view_source.views[member.view]
        return dict(name=member.name, width=member.width, view=member.view, size=scale,
                    frames=count)

    def losses_finite(self) -> bool:
        return all(math.isfinite(v) for v in self.losses)

    def hooked(self, cohort) -> None:
        log_vars = self.step.train_step(self.data, self.optim_wrapper, cohort)
        self.losses.append(float(log_vars['loss']))

    def batch_views(self, cohort) -> None:
        """The step of ``batch_views=...`` fed the stock batch."""
        self.view_making_s.append(0.0)
        log_vars = self.batch_step.train_step(self.stock_data, self.optim_wrapper, cohort)
        self.losses.append(float(log_vars['loss']))

    def members(self, cohort) -> None:
        """Each member alone, one after the other: a one-member cohort each."""
        for member in cohort:
            seconds, _ = common.clock(lambda: self.hooked([member]), self.device)
            self.member_s.setdefault(member.name, []).append(seconds)

    def plain(self, cohort=None) -> None:
        log_vars = self.model.train_step(copy.copy(self.views[0]), self.optim_wrapper)
        self.losses.append(float(log_vars['loss'].detach()))  # mmengine keeps its graph

    def member_flops(self, configs) -> dict:
        """Forward FLOPs of the batch at each (width, view): the recognizer's
        tensor forward (backbone + head, the loss forward minus the loss),
        traced on the slim model itself."""
        from mutual_mm.hosts import HostForward
        forward = HostForward(self.step.host, 'scores')
        flops = {}
        try:
            for width, view in configs:
                index = self.step.configure(Member('flops', width, view))
                inputs = self.model.data_preprocessor(copy.copy(self.views[index]),
                                                      True)['inputs']
                flops[(width, view)] = common.count_flops(forward, inputs)
        finally:
            self.step.configure(Member('full', self.grid.max, 0))
        return flops


def config_of(args, steps: Steps, **extra) -> dict:
    return dict(model=steps.model_name, size=args.size,
                frames=args.frames if steps.frames else None, batch=args.batch, **extra,
                width_range=[steps.grid.min, steps.grid.max], width_step=steps.grid.step,
                num_random=NUM_RANDOM, view_sizes=steps.scales, view_frames=steps.frames,
                views=[list(v) for v in steps.step.view_source.views])


def time_variants(steps: Steps, cohort, args, pairs: dict):
    """The variants named in ``pairs`` round-robin: their step times (members:
    the sum of the members' own), the paired ratios, and the load average."""
    names = list(dict.fromkeys(n for pair in pairs.values() for n in pair
                               if n != 'view_making'))
    print(f'timing: {args.warmup} warm-up + {args.repeats} repeats, round-robin')
    samples, watch = common.round_robin(
        {name: (lambda name=name: getattr(steps, name)(cohort)) for name in names},
        steps.device, args.warmup, args.repeats)
    keep = slice(args.warmup, None)  # the timed rounds of what the variants recorded
    member_samples = {k: v[keep] for k, v in steps.member_s.items()}
    if 'members' in samples:
        samples['members'] = [sum(t) for t in zip(*member_samples.values())]
    if 'batch_views' in samples:
        samples['view_making'] = steps.view_making_s[keep]
    for r in range(args.repeats):
        print(f'  repeat {r + 1}: ' + ', '.join(f'{n} {samples[n][r] * 1e3:.0f} ms'
                                                for n in samples), flush=True)
    paired = {k: common.paired_ratios(samples[a], samples[b]) for k, (a, b) in pairs.items()}
    return dict(
        samples_s=samples, medians_s={n: statistics.median(v) for n, v in samples.items()},
        paired_ratios={k: r['per_round'] for k, r in paired.items()},
        ratios={k: r['median'] for k, r in paired.items()},
        ratios_iqr={k: [r['q1'], r['q3']] for k, r in paired.items()},
        ratio_of_medians={k: r['of_medians'] for k, r in paired.items()},
        losses_finite=steps.losses_finite(), **watch.as_dict()), member_samples


def compare(args, steps: Steps, cohort) -> dict:
    configs = sorted({(m.width, m.view) for m in cohort} | {(steps.grid.max, 0)})
    flops = steps.member_flops(configs)
    full_flops = flops[(steps.grid.max, 0)]
    smallest = next(m for m in cohort if m.name == 'min')
    if not flops[(smallest.width, smallest.view)] < full_flops:
        raise RuntimeError('the FLOPs trace did not see the sliced layers')
    expected = sum(flops[(m.width, m.view)] for m in cohort) / full_flops
    print(f'FLOPs (traced slim model): full step {full_flops / 1e9:.2f} GMACs fwd per '
          f'batch; cohort sum / full = {expected:.3f}')
    timed, member_samples = time_variants(steps, cohort, args, dict(
        hooked_over_members=('hooked', 'members'), hooked_over_plain=('hooked', 'plain'),
        members_over_plain=('members', 'plain'),
        batch_views_over_hooked=('batch_views', 'hooked'),
        view_making_share=('view_making', 'batch_views')))
    met = timed['ratios']['hooked_over_members'] <= TARGET_HOOKED_OVER_MEMBERS
    return dict(
        **common.environment('mutual_step', steps.device),
        config=config_of(args, steps, repeats=args.repeats, warmup=args.warmup, lr=args.lr,
                         seed=args.seed, threads=torch.get_num_threads(),
                         cudnn_benchmark=bool(args.cudnn_benchmark), distill='kl'),
        cohort=[dict(steps.describe(m), gmacs_fwd=flops[(m.width, m.view)] / 1e9)
                for m in cohort],
        flops=dict(method='FlopAnalyzer on the slim model (traced)',
                   unit='multiply-adds (fvcore convention)', full=full_flops,
                   per_config={f'w{w}_v{v}': f for (w, v), f in flops.items()},
                   expected_hooked_over_plain=expected),
        member_samples_s=member_samples, **timed,
        target=dict(hooked_over_members=TARGET_HOOKED_OVER_MEMBERS, met=met),
        batch_views=batch_views_record(
            'MutualLearningHook(batch_views=dict(scales, frames)): the stock pipeline '
            '(Resize to S x S, all T frames), BatchViews.make in the step', steps, cohort,
            timed))


def batch_views_record(source: str, steps, cohort, timed: dict) -> dict:
    """The batch-views part of a result: the views made per step and their share."""
    share = timed['ratios']['view_making_share']
    return dict(
        source=source,
        stock_batch_equals_pipeline_view0=steps.stock_equals_view0,
        views_made_per_step=sum(m.view != 0 for m in cohort),
        view_making_ms_median=timed['medians_s']['view_making'] * 1e3,
        view_making_share=dict(
            per_round=timed['paired_ratios']['view_making_share'], median=share,
            q1=timed['ratios_iqr']['view_making_share'][0],
            q3=timed['ratios_iqr']['view_making_share'][1],
            of_medians=timed['ratio_of_medians']['view_making_share']),
        target=dict(view_making_share=TARGET_VIEW_MAKING_SHARE,
                    met=share <= TARGET_VIEW_MAKING_SHARE),
        timing_note='device synchronised before and after each make; '
                    'share = make seconds / batch_views step seconds, per repeat')


def print_ratios(r: dict, rows) -> None:
    """``rows``: (key of ``r['ratios']``, label, FLOPs-expected or None, target)."""
    print(f"\n{'ratio (median of per-repeat ratios)':<40}{'measured':>9}"
          f"{'FLOPs-expected':>16}{'target':>16}")
    for key, label, flops, target in rows:
        ratio = r['ratios'][key]
        value = f'{ratio:>9.2%}' if key.endswith('share') else f'{ratio:>9.3f}'
        print(f'{label:<40}{value}'
              + (f'{flops:>16.3f}' if flops is not None else f"{'':>16}") + f'{target:>16}')
    print(common.describe_load(r))
    if not r['batch_views']['stock_batch_equals_pipeline_view0']:
        print("note: the stock batch differs from the pipeline's view 0 (other clips?)")
    if not r['losses_finite']:
        print('WARNING: non-finite losses during the benchmark (timings may be off)')


def view_making_target(r: dict) -> str:
    return (f'<= {TARGET_VIEW_MAKING_SHARE:.0%}  '
            + ('PASS' if r['batch_views']['target']['met'] else 'FAIL'))


def print_comparison(r: dict) -> None:
    med, expected = r['medians_s'], r['flops']['expected_hooked_over_plain']
    rows = [('hooked step (MutualStep.train_step)', med['hooked'], ''),
            ('members separately (sum)', med['members'], '')]
    for m in r['cohort']:
        rows.append((f"  {m['name']} w={m['width']} {m['size']}px {m['frames']}f",
                     statistics.median(r['member_samples_s'][m['name']]),
                     f"{m['gmacs_fwd']:.2f} GMACs"))
    rows += [('plain full step (stock train_step)', med['plain'],
              f"{r['flops']['full'] / 1e9:.2f} GMACs"),
             ('hooked step, batch views (stock batch)', med['batch_views'], ''),
             ('  of which making the views', med['view_making'],
              f"{r['batch_views']['views_made_per_step']} views")]
    print(f"\n{'variant':<40}{'median ms':>11}  FLOPs (fwd, batch)")
    for label, t, f in rows:
        print(f'{label:<40}{t * 1e3:>11.1f}  {f}')
    print_ratios(r, (
        ('hooked_over_members', 'hooked / sum-of-members', 1.0,
         '<= 1.10  ' + ('PASS' if r['target']['met'] else 'FAIL')),
        ('hooked_over_plain', 'hooked / plain', expected, 'report'),
        ('members_over_plain', 'sum-of-members / plain', expected, ''),
        ('batch_views_over_hooked', 'batch views / pipeline views (hooked)', 1.0, 'report'),
        ('view_making_share', 'view making / batch-views step', None, view_making_target(r))))
    print(f'note: sum-of-members includes {len(r["cohort"])} optimizer steps, the hooked '
          'step 1; paper: MobileNetV1 [0.25,1] ~2x wall, Slow-8x8 [0.63,1] ~1.4x FLOPs, '
          'slightly more wall time')


# ------------------------------------------------ batch views of a detector
def compare_batch_views(args, steps: Steps, cohort) -> dict:
    """hooked (pipeline views) vs batch_views vs plain, round-robin; the share
    of the batch_views step spent making the views."""
    timed, _ = time_variants(steps, cohort, args, dict(
        batch_views_over_hooked=('batch_views', 'hooked'),
        hooked_over_plain=('hooked', 'plain'),
        view_making_share=('view_making', 'batch_views')))
    return dict(
        **common.environment('mutual_step_batch_views', steps.device),
        config=config_of(args, steps, repeats=args.repeats, warmup=args.warmup, lr=args.lr,
                         seed=args.seed, threads=torch.get_num_threads(),
                         distill=steps.distill,
                         image_hw=[tuple(x.shape[-2:]) for x in steps.stock_data['inputs']],
                         objects=[len(s.gt_instances)
                                  for s in steps.stock_data['data_samples']]),
        cohort=[steps.describe(m) for m in cohort], **timed,
        batch_views=batch_views_record(
            'MutualLearningHook(batch_views=dict(scales)): the stock pipeline (Resize '
            'keep_ratio to the full view), BatchViews.make in the step '
            '(DetectorHost.batch_view: images, boxes, bitmap masks)', steps, cohort, timed))


def print_batch_views(r: dict) -> None:
    print(f"\n{'variant':<40}{'median ms':>11}")
    for label, key in (('hooked step, pipeline views', 'hooked'),
                       ('hooked step, batch views (stock batch)', 'batch_views'),
                       ('  of which making the views', 'view_making'),
                       ('plain full step (stock train_step)', 'plain')):
        print(f"{label:<40}{r['medians_s'][key] * 1e3:>11.1f}")
    print_ratios(r, (
        ('batch_views_over_hooked', 'batch views / pipeline views', None, 'report'),
        ('hooked_over_plain', 'hooked / plain', None, 'report'),
        ('view_making_share', 'view making / batch-views step', None, view_making_target(r))))


# ------------------------------------------------------------- steady state
def steady_state(args, steps: Steps) -> dict:
    """Consecutive hooked steps, a new cohort each (as training draws them)."""
    rng = random.Random(args.seed)
    possible = len(steps.grid.widths) * steps.step.num_views
    seen, times, new_counts, seen_counts = set(), [], [], []
    print(f'steady state: {args.steady_iters} hooked steps, a new cohort each; '
          f'{possible} possible (width, view) pairs')
    with common.Watch() as watch:
        for i in range(args.steady_iters):
            cohort = sample_cohort(steps.grid, steps.step.num_views, NUM_RANDOM, rng)
            pairs = {(m.width, m.view) for m in cohort}
            new_counts.append(len(pairs - seen))
            seen |= pairs
            seen_counts.append(len(seen))
            times.append(common.clock(lambda: steps.hooked(cohort), steps.device)[0])
            if i == 0 or (i + 1) % 10 == 0:
                print(f'  iter {i + 1:>4}: {times[-1] * 1e3:8.1f} ms ({new_counts[-1]} new '
                      f'(width, view); {len(seen)}/{possible} seen)', flush=True)
    return dict(
        **common.environment('mutual_step_steady_state', steps.device),
        config=config_of(args, steps, lr=args.lr, seed=args.seed, iters=args.steady_iters,
                         cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
                         data='one fixed batch (no data loading)'),
        report=steady_report(times, new_counts, seen_counts, possible), step_s=times,
        new_pairs_per_iteration=new_counts, pairs_seen=seen_counts,
        losses_finite=steps.losses_finite(), **watch.as_dict())


def steady_report(times, new_counts, seen_counts, possible: int) -> dict:
    """Iteration 20 against the last (``early``, ``last``; each also the median
    of the 10 iterations ending there), and steps with a new (width, view)
    against those without."""
    n, early = len(times), min(20, len(times))
    new_t = [t for t, c in zip(times, new_counts) if c]
    old_t = [t for t, c in zip(times, new_counts) if not c]
    report = dict(iteration_1_ms=times[0] * 1e3, early_iteration=early, last_iteration=n)
    for name, it in (('early', early), ('last', n)):
        report.update({f'{name}_ms': times[it - 1] * 1e3,
                       f'{name}_median10_ms': statistics.median(times[max(0, it - 10):it]) * 1e3,
                       f'pairs_seen_at_{name}': seen_counts[it - 1]})
    return dict(
        report, ratio_early_over_last=report['early_ms'] / report['last_ms'],
        ratio_early_over_last_median10=report['early_median10_ms'] / report['last_median10_ms'],
        mean_ms_iterations_with_new_pairs=statistics.mean(new_t) * 1e3 if new_t else None,
        mean_ms_iterations_without_new_pairs=statistics.mean(old_t) * 1e3 if old_t else None,
        iterations_with_new_pairs=len(new_t), pairs_possible=possible,
        last_iteration_with_new_pair=max(i + 1 for i, c in enumerate(new_counts) if c))


def print_steady(r: dict) -> None:
    print()
    for key, value in r['report'].items():
        print(f'{key:<40} ' + (f'{value:.2f}' if isinstance(value, float) else f'{value}'))
    print(common.describe_load(r))
    if r['device'] != 'cuda':
        print('note: CPU run: cudnn plays no part; the steady-state question is a GPU one')


def main(argv=None):
    args = parse_args(argv)
    device = common.start(args)
    if args.steady_state:
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix='bench_mutual_step_') as tmp:
        steps = Steps(args, device, tmp)
        grid = steps.grid
        cohort = sample_cohort(grid, steps.step.num_views, NUM_RANDOM, random.Random(args.seed))
        print(common.describe_machine(device))
        print(f'views: sizes {steps.scales} x frames {steps.frames}; batch {args.batch}; '
              f'widths {grid.widths[0]}..{grid.max} step {grid.step}')
        print(f'cohort (seed {args.seed}):')
        for d in map(steps.describe, cohort):
            print(f"  {d['name']:<6} width {d['width']:<5} view {d['view']} "
                  f"({d['size']} px, {d['frames']} frames)")
        if args.steady_state:
            result = steady_state(args, steps)
            print_steady(result)
        elif args.model == 'mask-rcnn':
            result = compare_batch_views(args, steps, cohort)
            print_batch_views(result)
        else:
            result = compare(args, steps, cohort)
            print_comparison(result)
    common.save_json(args.out, result)


if __name__ == '__main__':
    main()
