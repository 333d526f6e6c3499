"""Wall time of one MutualNet training step against its members and a plain step.

What it times, on the stock SlowOnly R50 recognizer (mmaction2 config, backbone
swapped to ``SlimResNet3dSlowOnly``) trained through ``MutualLearningHook`` with
``MultiResolution`` views spatial {S, 0.8S, 0.63S} x frames {T, 0.63T, 0.4T}
(paper section 6.5: 224/178/142 px, 8/5/3 frames), width range [0.63, 1.0]:

* ``hooked``: one hooked step, ``mutual_train_step`` with a real mmengine
  ``OptimWrapper(SGD)`` on a fixed cohort (full + min + 2 random members, drawn
  once with a seeded ``sample_cohort``), KL distillation as the hook does it;
* ``members``: each member of the same cohort alone: preprocess its view, loss
  forward (KL to the full member's detached logits for the sub-networks),
  backward, optimizer step; timed one by one and summed;
* ``plain``: one stock full-width step on view 0 (``model.train_step``).

The variants run round-robin in every repeat (their order rotates), so load from
other processes hits them alike; the table reports medians and the median of the
per-repeat ratios. Targets (the issue): hooked <= 1.10 x sum of members; hooked /
plain is reported beside its FLOPs-expected value, sum(member FLOPs) / full
FLOPs (forward FLOPs, mmengine's ``FlopAnalyzer`` on backbone + head at each
member's width and view). The paper reports ~2x wall time for MobileNetV1
[0.25, 1] and, for Slow-8x8 [0.63, 1], ~1.4x FLOPs but only slightly more wall
time than a plain step.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_mutual_step.py            # CPU-sized defaults
    .venv/bin/python benchmarks/bench_mutual_step.py --device cuda --size 224 \
        --batch 8 --cudnn-benchmark

Results (all samples, config, versions, device, timestamp) go to
``benchmarks/results/mutual_step_<device>.json`` unless ``--out`` says otherwise.

``--steady-state`` instead times ``--steady-iters`` (default 200) consecutive
hooked steps with ``torch.backends.cudnn.benchmark = True`` and a new cohort
drawn every iteration, as training does (seeded ``sample_cohort``, widths on
the 0.05 grid, views drawn uniformly), on the same fixed batch (no data
loading). Every (width, view) not seen before is a new set of convolution
shapes that cudnn benchmarks first; the report gives the step time at
iteration 20 and at the last iteration (each also as the median of the 10
iterations ending there), their ratio, the mean time of iterations that met a
new (width, view) against those that did not, and how many of the possible
(width, view) pairs had been seen by then. On the CPU it runs all the same
(cudnn plays no part), so the ratio shows only allocator/cache warm-up::

    .venv/bin/python benchmarks/bench_mutual_step.py --device cuda --size 224 \
        --batch 8 --steady-state                       # GPU steady state
    .venv/bin/python benchmarks/bench_mutual_step.py --steady-state --steady-iters 40

It writes ``benchmarks/results/mutual_step_steady_<device>.json`` by default.
"""
import argparse
import copy
import datetime
import gc
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

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch import nn  # noqa: E402

import mutual_mm  # noqa: E402,F401  (registers the transforms, hook, backbones)

SLOWONLY = ('mmaction::recognition/slowonly/'
            'slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py')
WIDTH_RANGE = (0.63, 1.0)
WIDTH_STEP = 0.05
NUM_RANDOM = 2
TARGET_HOOKED_OVER_MEMBERS = 1.10


# ----------------------------------------------------------------- set-up
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=96,
                   help='full-network short edge S; views use S, 0.8S, 0.63S')
    p.add_argument('--frames', type=int, default=8,
                   help='full-network frames T; views use T, 0.63T, 0.4T')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1,
                   help='untimed round-robin rounds before the timed repeats')
    p.add_argument('--device', choices=('cpu', 'cuda'),
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--cudnn-benchmark', action='store_true')
    p.add_argument('--threads', type=int, default=None,
                   help='torch.set_num_threads (CPU); default: torch\'s own')
    p.add_argument('--lr', type=float, default=0.01, help='SGD learning rate')
    p.add_argument('--seed', type=int, default=0, help='seed of the timed cohort')
    p.add_argument('--out', default=None,
                   help='JSON path (default benchmarks/results/mutual_step_<device>.json, '
                        'with --steady-state mutual_step_steady_<device>.json)')
    p.add_argument('--steady-state', action='store_true',
                   help='time --steady-iters consecutive hooked steps (fresh cohort each, '
                        'cudnn.benchmark on) and report iteration 20 vs the last')
    p.add_argument('--steady-iters', type=int, default=200,
                   help='iterations of --steady-state (default 200)')
    args = p.parse_args(argv)
    if args.steady_state and args.steady_iters < 2:
        p.error('--steady-iters must be >= 2')
    return args


def view_sizes(size: int, frames: int):
    scales = [size, int(round(0.8 * size)), int(round(0.63 * size))]
    counts = [frames, max(1, int(round(0.63 * frames))), max(1, int(round(0.4 * frames)))]
    return scales, counts


def build_cfg(work_dir, data_root, scales, frames, batch, seed=0):
    """The stock SlowOnly R50 Kinetics config with SlimResNet3dSlowOnly,
    MultiResolution (spatial x temporal) and MutualLearningHook, on generated
    mp4 clips (as tests/helpers.py's ``rec_train_cfg``, at benchmark sizes)."""
    from mutual_mm.datasets.synthetic import MOTION_CLASSES, make_motion_videos
    from mutual_mm.utils import load_config
    cfg = load_config(SLOWONLY)
    height = max(48, scales[0])
    width = 2 * ((height * 4 // 3 + 1) // 2)
    ann = make_motion_videos(str(data_root), num_videos=max(4, batch),
                             size=(width, height), num_frames=2 * frames[0] + 8,
                             seed=seed)
    cfg.model.backbone.type = 'SlimResNet3dSlowOnly'
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.num_classes = len(MOTION_CLASSES)
    cfg.model.cls_head.dropout_ratio = 0
    tail = [dict(type='Resize', keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs')]
    pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=frames[0], frame_interval=2, num_clips=1),
        dict(type='DecordDecode'),
        dict(type='MultiResolution', scales=list(scales), frames=list(frames),
             transforms=tail),
    ]
    cfg.train_dataloader = dict(
        batch_size=batch, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='VideoDataset', ann_file=ann,
                     data_prefix=dict(video=str(data_root)), pipeline=pipeline))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=10**6)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.custom_hooks = [dict(type='MutualLearningHook', width_range=WIDTH_RANGE,
                             width_step=WIDTH_STEP, num_random=NUM_RANDOM,
                             distill='kl')]
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'  # no config / hook-table dump
    cfg.work_dir = str(work_dir)
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer = dict(type='ActionVisualizer', vis_backends=[])
    return cfg


# ----------------------------------------------------------------- FLOPs
class _Forward(nn.Module):
    """Backbone + classification head of a Recognizer3D on a preprocessed batch
    (N, num_clips, C, T, H, W): the FLOPs of its loss forward, minus the loss."""

    def __init__(self, model):
        super().__init__()
        self.backbone = model.backbone
        self.cls_head = model.cls_head

    def forward(self, x):
        return self.cls_head(self.backbone(x.reshape((-1,) + x.shape[2:])))


def _analyze(module, x) -> int:
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, (x,))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return int(analyzer.total())


def member_flops(model, hook, configs, inputs_of_view):
    """Forward FLOPs (multiply-adds, fvcore convention) of the batch at each
    (width, view) in ``configs``. Traces the slim model itself; falls back to
    ``export_static`` copies if tracing fails or does not see the sliced shapes."""
    from mutual_mm.engine import Member
    from mutual_mm.ops import export_static
    net = _Forward(model)
    was_training = model.training
    model.eval()
    results, method, note = {}, 'FlopAnalyzer on the slim model (traced)', ''
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for width, view in configs:
                hook._configure(Member('flops', width, view))
                results[(width, view)] = _analyze(net, inputs_of_view(view))
            # the trace must see the sliced convolutions
            hook._configure(Member('flops', WIDTH_RANGE[0], 0))
            low = _analyze(net, inputs_of_view(0))
            hook._configure(Member('flops', WIDTH_RANGE[1], 0))
            high = _analyze(net, inputs_of_view(0))
        if not 0 < low < high:
            raise RuntimeError(f'traced FLOPs at width {WIDTH_RANGE[0]} ({low}) not '
                               f'below those at {WIDTH_RANGE[1]} ({high})')
    except Exception as err:  # noqa: BLE001 - any trace failure: fall back
        note = f'tracing the slim model failed ({err}); '
        method = 'FlopAnalyzer on export_static copies (fallback)'
        results = {}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for width, view in configs:
                hook._configure(Member('flops', width, view))
                x = inputs_of_view(view)
                results[(width, view)] = _analyze(export_static(net, x), x)
    finally:
        hook._configure(Member('full', WIDTH_RANGE[1], 0))
        model.train(was_training)
    return results, method + (f' [{note.rstrip("; ")}]' if note else '')


# ----------------------------------------------------------------- timing
def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device available')
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steady_state:
        torch.backends.cudnn.benchmark = True
    out = args.out or osp.join(ROOT, 'benchmarks', 'results',
                               f'mutual_step{"_steady" if args.steady_state else ""}'
                               f'_{args.device}.json')

    from mmengine.dataset import pseudo_collate
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.runner import Runner

    from mutual_mm.engine import (Member, MutualLearningHook, kl_to_teacher,
                                  mutual_train_step, sample_cohort, split_views)
    from mutual_mm.internals import run_forward
    from mutual_mm.ops import WidthGrid

    scales, frames = view_sizes(args.size, args.frames)
    tmp = tempfile.TemporaryDirectory(prefix='bench_mutual_step_')
    cfg = build_cfg(osp.join(tmp.name, 'work'), osp.join(tmp.name, 'data'),
                    scales, frames, args.batch, seed=args.seed)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    model = runner.model.to(device)
    model.train()
    hook = [h for h in runner.hooks if isinstance(h, MutualLearningHook)][0]
    hook.before_train(runner)  # set-up only: consumers, logits capture, views
    # variant (c) is the stock step: drop the hook's instance-level replacement
    model.__dict__.pop('train_step', None)
    assert hook.resolved_distill == 'kl', hook.resolved_distill

    dataset = runner.train_dataloader.dataset
    data = pseudo_collate([dataset[i % len(dataset)] for i in range(args.batch)])
    views = split_views(data, hook.num_views)

    grid = WidthGrid(WIDTH_RANGE, step=WIDTH_STEP)
    assert grid.widths == hook.grid.widths
    cohort = sample_cohort(grid, hook.num_views, NUM_RANDOM, random.Random(args.seed))

    def describe(member):
        scale, count = hook.views[member.view]
        return dict(name=member.name, width=member.width, view=member.view,
                    size=scale, frames=count)

    print(f'torch {torch.__version__}, device {device}'
          + (f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda'
             else f' ({torch.get_num_threads()} threads)')
          + f', cudnn.benchmark={torch.backends.cudnn.benchmark}')
    print(f'views: sizes {scales} x frames {frames}; batch {args.batch}; '
          f'widths {grid.widths[0]}..{grid.max} step {WIDTH_STEP}')
    print('cohort (seed %d):' % args.seed)
    for m in cohort:
        d = describe(m)
        print(f"  {d['name']:<6} width {d['width']:<5} view {d['view']} "
              f"({d['size']} px, {d['frames']} frames)")

    if args.steady_state:
        steady_state(args, model, hook, data, grid, device, out, scales, frames)
        tmp.cleanup()
        return

    # ---- FLOPs
    def inputs_of_view(view):
        return model.data_preprocessor(copy.copy(views[view]), True)['inputs']

    configs = sorted({(m.width, m.view) for m in cohort} | {(grid.max, 0)})
    flops, flops_method = member_flops(model, hook, configs, inputs_of_view)
    full_flops = flops[(grid.max, 0)]
    member_gflops = {m.name: flops[(m.width, m.view)] / 1e9 for m in cohort}
    flops_expected = sum(flops[(m.width, m.view)] for m in cohort) / full_flops
    print(f'FLOPs ({flops_method}): full step {full_flops / 1e9:.2f} GMACs fwd '
          f'per batch; cohort sum / full = {flops_expected:.3f}')

    # ---- variants
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=args.lr,
                                                 momentum=0.9))

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    losses_seen = []

    def run_hooked():
        try:
            log_vars = mutual_train_step(model, data, optim_wrapper, cohort,
                                         hook._configure, hook._captured_logits)
        finally:
            hook._configure(Member('full', grid.max, 0))
        losses_seen.append(float(log_vars['loss']))

    def run_member(member, teacher):
        """One member alone; returns (phase times in s, its detached logits)."""
        t0 = time.perf_counter()
        with optim_wrapper.optim_context(model):
            batch = model.data_preprocessor(views[hook._configure(member)], True)
            losses = run_forward(model, batch, mode='loss')
            logits = hook._captured_logits()
            if teacher is not None:
                losses = {'loss_kl': kl_to_teacher(logits, teacher)}
        loss, _ = model.parse_losses(losses)
        sync()
        t1 = time.perf_counter()
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        sync()
        t2 = time.perf_counter()
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        sync()
        t3 = time.perf_counter()
        losses_seen.append(float(loss.detach()))
        return dict(forward=t1 - t0, backward=t2 - t1, step=t3 - t2,
                    total=t3 - t0), logits.detach()

    def run_members():
        times, teacher = {}, None
        try:
            for member in cohort:
                times[member.name], logits = run_member(member, teacher)
                if teacher is None:  # the full member comes first
                    teacher = logits
        finally:
            hook._configure(Member('full', grid.max, 0))
        return times

    def run_plain():
        hook._configure(Member('full', grid.max, 0))
        log_vars = model.train_step(copy.copy(views[0]), optim_wrapper)
        hook._logits = None
        losses_seen.append(float(log_vars['loss']))

    def timed(fn):
        gc.collect()
        sync()
        t0 = time.perf_counter()
        extra = fn()
        sync()
        return time.perf_counter() - t0, extra

    names = ['hooked', 'members', 'plain']
    fns = dict(hooked=run_hooked, members=run_members, plain=run_plain)
    samples = {n: [] for n in names}
    member_samples = {m.name: [] for m in cohort}
    rounds = args.warmup + args.repeats
    print(f'timing: {args.warmup} warm-up + {args.repeats} repeats, round-robin')
    for r in range(rounds):
        order = names[r % 3:] + names[:r % 3]
        line = []
        for name in order:
            wall, extra = timed(fns[name])
            if name == 'members':
                wall = sum(t['total'] for t in extra.values())  # sum of members
            if r >= args.warmup:
                samples[name].append(wall)
                if name == 'members':
                    for k, t in extra.items():
                        member_samples[k].append(t)
            line.append(f'{name} {wall * 1e3:.0f} ms')
        tag = 'warm-up' if r < args.warmup else f'repeat {r - args.warmup + 1}'
        print(f'  {tag:<9}: ' + ', '.join(line), flush=True)

    finite = all(v == v and abs(v) != float('inf') for v in losses_seen)

    # ---- report
    med = {n: statistics.median(v) for n, v in samples.items()}
    paired = dict(
        hooked_over_members=[h / m for h, m in zip(samples['hooked'], samples['members'])],
        hooked_over_plain=[h / p for h, p in zip(samples['hooked'], samples['plain'])],
        members_over_plain=[m / p for m, p in zip(samples['members'], samples['plain'])],
    )
    ratios = {k: statistics.median(v) for k, v in paired.items()}
    step_ms = {k: statistics.median(t['step'] for t in v) * 1e3
               for k, v in member_samples.items()}
    extra_steps_ms = sum(step_ms.values()) - statistics.median(step_ms.values())

    rows = [('hooked step (mutual_train_step)', med['hooked'], '')]
    rows.append(('members separately (sum)', med['members'], ''))
    for m in cohort:
        d = describe(m)
        t = statistics.median(s['total'] for s in member_samples[m.name])
        rows.append((f"  {m.name} w={m.width} {d['size']}px {d['frames']}f",
                     t, f'{member_gflops[m.name]:.2f} GMACs'))
    rows.append(('plain full step (stock train_step)', med['plain'],
                 f'{full_flops / 1e9:.2f} GMACs'))
    print()
    print(f"{'variant':<40}{'median ms':>11}  FLOPs (fwd, batch)")
    for label, t, f in rows:
        print(f'{label:<40}{t * 1e3:>11.1f}  {f}')
    print()
    print(f"{'ratio (median of per-repeat ratios)':<40}{'measured':>9}"
          f"{'FLOPs-expected':>16}{'target':>10}")
    ok = ratios['hooked_over_members'] <= TARGET_HOOKED_OVER_MEMBERS
    print(f"{'hooked / sum-of-members':<40}{ratios['hooked_over_members']:>9.3f}"
          f"{1.0:>16.3f}{'<= 1.10':>10}  {'PASS' if ok else 'FAIL'}")
    print(f"{'hooked / plain':<40}{ratios['hooked_over_plain']:>9.3f}"
          f"{flops_expected:>16.3f}{'report':>10}")
    print(f"{'sum-of-members / plain':<40}{ratios['members_over_plain']:>9.3f}"
          f"{flops_expected:>16.3f}{'':>10}")
    print(f'note: sum-of-members includes {len(cohort)} optimizer steps, the hooked '
          f'step 1 ({extra_steps_ms:.1f} ms of extra SGD steps in the sum, median); '
          f'paper: MobileNetV1 [0.25,1] ~2x wall, Slow-8x8 [0.63,1] ~1.4x FLOPs, '
          f'slightly more wall time')
    if not finite:
        print('WARNING: non-finite losses during the benchmark (timings may be off)')

    result = dict(
        benchmark='mutual_step', **_versions(device),
        config=dict(model=SLOWONLY + ' (backbone SlimResNet3dSlowOnly)',
                    size=args.size, frames=args.frames, batch=args.batch,
                    repeats=args.repeats, warmup=args.warmup, lr=args.lr,
                    seed=args.seed, threads=torch.get_num_threads(),
                    cudnn_benchmark=bool(args.cudnn_benchmark),
                    width_range=WIDTH_RANGE, width_step=WIDTH_STEP,
                    num_random=NUM_RANDOM, distill='kl', view_sizes=scales,
                    view_frames=frames, views=[list(v) for v in hook.views]),
        cohort=[dict(describe(m), gmacs_fwd=member_gflops[m.name]) for m in cohort],
        flops=dict(method=flops_method, unit='multiply-adds (fvcore convention)',
                   full=full_flops,
                   per_config={f'w{w}_v{v}': f for (w, v), f in flops.items()},
                   expected_hooked_over_plain=flops_expected),
        samples_s=samples, member_samples_s=member_samples,
        medians_s=med, paired_ratios=paired, ratios=ratios,
        ratio_of_medians=dict(hooked_over_members=med['hooked'] / med['members'],
                              hooked_over_plain=med['hooked'] / med['plain'],
                              members_over_plain=med['members'] / med['plain']),
        member_step_ms_median=step_ms,
        target=dict(hooked_over_members=TARGET_HOOKED_OVER_MEMBERS, met=ok),
        losses_finite=finite,
    )
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'saved {osp.relpath(out)}')
    tmp.cleanup()


def _versions(device):
    import mmaction
    import mmengine
    return dict(
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        torch=torch.__version__, mmengine=mmengine.__version__,
        mmaction=mmaction.__version__, python=platform.python_version(),
        device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                     else platform.processor() or platform.machine()),
        num_threads=torch.get_num_threads(), cpu_count=os.cpu_count())


def steady_state(args, model, hook, data, grid, device, out, scales, frames):
    """``--steady-state``: consecutive hooked steps, a new cohort each, cudnn
    benchmark on; step time at iteration 20 against the last iteration."""
    from mmengine.optim import OptimWrapper

    from mutual_mm.engine import Member, mutual_train_step, sample_cohort

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=args.lr,
                                                 momentum=0.9))
    rng = random.Random(args.seed)
    n = args.steady_iters
    all_pairs = len(grid.widths) * hook.num_views
    seen, times, new_counts, seen_counts, losses = set(), [], [], [], []
    print(f'steady state: {n} hooked steps, a new cohort each, '
          f'cudnn.benchmark={torch.backends.cudnn.benchmark}; '
          f'{all_pairs} possible (width, view) pairs')
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    for i in range(n):
        cohort = sample_cohort(grid, hook.num_views, NUM_RANDOM, rng)
        pairs = {(m.width, m.view) for m in cohort}
        new_counts.append(len(pairs - seen))
        seen |= pairs
        seen_counts.append(len(seen))
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        try:
            log_vars = mutual_train_step(model, data, optim_wrapper, cohort,
                                         hook._configure, hook._captured_logits)
        finally:
            hook._configure(Member('full', grid.max, 0))
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
        losses.append(float(log_vars['loss']))
        if (i + 1) % 10 == 0 or i == 0:
            print(f'  iter {i + 1:>4}: {times[-1] * 1e3:8.1f} ms '
                  f'({new_counts[-1]} new (width, view); {len(seen)}/{all_pairs} seen)',
                  flush=True)
    elapsed = time.perf_counter() - t_start
    load_after = os.getloadavg()

    def at(it):  # 1-based iteration: (its time, median of the 10 ending there)
        it = min(it, n)
        return times[it - 1], statistics.median(times[max(0, it - 10):it])

    early_it, last_it = min(20, n), n
    early, early_med = at(early_it)
    last, last_med = at(last_it)
    new_t = [t for t, c in zip(times, new_counts) if c]
    old_t = [t for t, c in zip(times, new_counts) if not c]
    report = dict(
        iteration_1_ms=times[0] * 1e3,
        early_iteration=early_it, early_ms=early * 1e3,
        early_median10_ms=early_med * 1e3,
        last_iteration=last_it, last_ms=last * 1e3, last_median10_ms=last_med * 1e3,
        ratio_early_over_last=early / last,
        ratio_early_over_last_median10=early_med / last_med,
        mean_ms_iterations_with_new_pairs=(statistics.mean(new_t) * 1e3 if new_t
                                           else None),
        mean_ms_iterations_without_new_pairs=(statistics.mean(old_t) * 1e3 if old_t
                                              else None),
        iterations_with_new_pairs=len(new_t),
        pairs_seen_at_early=seen_counts[early_it - 1],
        pairs_seen_at_last=seen_counts[-1], pairs_possible=all_pairs,
        last_iteration_with_new_pair=(max(i + 1 for i, c in enumerate(new_counts) if c)),
    )
    print()
    print(f"iteration 1: {report['iteration_1_ms']:.1f} ms")
    print(f"iteration {early_it}: {report['early_ms']:.1f} ms "
          f"(median of iterations {max(1, early_it - 9)}-{early_it}: "
          f"{report['early_median10_ms']:.1f} ms; {report['pairs_seen_at_early']}/"
          f"{all_pairs} (width, view) pairs seen)")
    print(f"iteration {last_it}: {report['last_ms']:.1f} ms "
          f"(median of iterations {max(1, last_it - 9)}-{last_it}: "
          f"{report['last_median10_ms']:.1f} ms; {report['pairs_seen_at_last']}/"
          f"{all_pairs} seen, the last new one at iteration "
          f"{report['last_iteration_with_new_pair']})")
    print(f"ratio iteration {early_it} / {last_it}: {report['ratio_early_over_last']:.2f} "
          f"(medians of 10: {report['ratio_early_over_last_median10']:.2f})")
    if new_t and old_t:
        print(f"mean step with a new (width, view): "
              f"{report['mean_ms_iterations_with_new_pairs']:.1f} ms "
              f"({len(new_t)} iterations); without: "
              f"{report['mean_ms_iterations_without_new_pairs']:.1f} ms ({len(old_t)})")
    print(f'load avg {load_before[0]:.2f} -> {load_after[0]:.2f}; {elapsed:.0f} s')
    if device.type != 'cuda':
        print('note: CPU run: cudnn plays no part; the steady-state question is a GPU one')
    result = dict(
        benchmark='mutual_step_steady_state', **_versions(device),
        config=dict(model=SLOWONLY + ' (backbone SlimResNet3dSlowOnly)', size=args.size,
                    frames=args.frames, batch=args.batch, lr=args.lr, seed=args.seed,
                    iters=n, cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
                    width_range=WIDTH_RANGE, width_step=WIDTH_STEP,
                    num_random=NUM_RANDOM, view_sizes=scales, view_frames=frames,
                    data='one fixed batch (no data loading)'),
        report=report, step_s=times, new_pairs_per_iteration=new_counts,
        pairs_seen=seen_counts, losses_finite=all(v == v and abs(v) != float('inf')
                                                  for v in losses),
        loadavg_before=load_before, loadavg_after=load_after, wall_s=elapsed)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'saved {osp.relpath(out)}')


if __name__ == '__main__':
    main()
