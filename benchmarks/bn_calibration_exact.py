"""BN calibration, exact (one pass per BN depth) against one pass, on the demo models.

``calibrate_bn(..., exact=False)`` runs the calibration batches once, each BN
layer normalizing with its batch's own statistics, so a layer behind another BN
gets statistics that depend on how the calibration set is batched;
``exact=True`` runs one pass per BN depth, the shallower layers already at
their final statistics, and every layer gets the whole set's statistics. Per
demo task (``--tasks``), with the demo config's model trained ``--train-iters``
iterations on freshly generated demo data (0: random initialisation), at each
width of ``--widths`` and the full view (the calibration loader: training
samples through the test pipeline, the config's batch size):

* cost: ``--num-batches`` calibration batches (the demo's 8), loaded once and
  then calibrated by both modes side by side, rotated every round, after one
  warm-up round: median seconds per mode and the median per-round ratio; the
  passes the exact mode makes (its BN depths) and the layers;
* effect: the first 8 samples of the same loader, calibrated as batches
  [3, 3, 2] and as one batch of 8, in both modes: per BN layer and statistic
  (mean, variance), ``max |split - whole| / max |whole|`` over its channels; the
  largest over layers, the layer it is in and how many layers exceed 1e-2;
* with ``--video-checkpoint`` (a trained video demo): the val top-1 of its
  subnets (the demo's 4 widths x the largest and smallest view) calibrated on the
  demo's batches in each mode;
* the provided R-50 configs (``--provided``; random weights, 2 generated batches
  of 2 small samples, one round): the cost at 49 BN depths.

    # as recorded (the checkpoint: tools/demo.py's video run)
    .venv/bin/python benchmarks/bn_calibration_exact.py --threads 1 \
        --video-checkpoint work_dirs/mutual_demo/video/train/iter_500.pth
    .venv/bin/python benchmarks/bn_calibration_exact.py --tasks video --provided --rounds 5

Output: a table, and ``--out`` (default
benchmarks/results/bn_calibration_exact_cpu.json), with the CPU model (lscpu's
'Model name') and the date.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import warnings
from itertools import islice

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers the components)
from mutual_mm.deploy import batch_norms, calibrate_bn, trained_subnets  # noqa: E402
from mutual_mm.deploy.bn_calibration import bn_depths, relative_differences  # noqa: E402

warnings.filterwarnings('ignore')  # the host libraries' deprecation notes, every batch

CONFIGS = dict(
    video='configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py',
    detection='configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py')
# the provided R-50 configs: how the exact mode's cost grows with the BN depth
PROVIDED = dict(
    slowonly_r50='configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py',
    mask_rcnn_r50='configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py')
DEMO_WIDTHS = [1.0, 0.75, 0.5, 0.25]  # tools/demo.py's, for the whole-demo estimate
SPLIT = [3, 3, 2]
MODES = ('one_pass', 'exact')


def parse_args(argv=None):
    p = common.arg_parser(__doc__, device=False, cudnn=False)
    p.add_argument('--tasks', nargs='*', choices=sorted(CONFIGS), default=['video', 'detection'],
                   help='demo tasks (none: skip)')
    p.add_argument('--widths', type=float, nargs='+', default=[1.0, 0.5])
    p.add_argument('--num-batches', type=int, default=8, help="timed calibration batches "
                   "(default: the demo's 8)")
    p.add_argument('--rounds', type=int, default=3,
                   help='timed rounds after one warm-up (demo tasks; the R-50 configs: one, '
                        'no warm-up)')
    p.add_argument('--train-iters', type=int, default=2,
                   help='training iterations before calibrating (0: random weights)')
    p.add_argument('--video-checkpoint', default=None,
                   help='a trained video demo checkpoint (tools/demo.py writes '
                        'work_dirs/mutual_demo/video/train/iter_500.pth): also the val top-1 '
                        'of its subnets calibrated in both modes (64 generated val clips)')
    p.add_argument('--provided', nargs='*', choices=sorted(PROVIDED), default=sorted(PROVIDED),
                   help='provided R-50 configs timed too (random weights, 2 generated '
                        'batches of 2 small samples; none: skip)')
    return common.finish_args(p, p.parse_args(argv), 'bn_calibration_exact_cpu',
                              positive=('num_batches', 'rounds'),
                              non_negative=('train_iters', ))


def lscpu_model_name() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return common.device_name(torch.device('cpu'))
    return next((line.split(':', 1)[1].strip() for line in out.splitlines()
                 if line.startswith('Model name')), 'unknown')


def trained_model(task: str, args, work_dir: str):
    """The demo config's Runner, its model trained ``--train-iters`` iterations."""
    from mmengine.runner import Runner

    from mutual_mm.utils import load_config
    cfg = common.runner_cfg(load_config(osp.join(common.ROOT, CONFIGS[task])), work_dir,
                            args.seed)
    cfg.train_cfg.max_iters = max(args.train_iters, 1)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    if args.train_iters:
        runner.train()
    return cfg, runner


def batching_effect(model, dataset, width: float) -> dict:
    """Both modes: the first 8 samples as batches [3, 3, 2] against one batch of 8."""
    from mmengine.dataset import pseudo_collate
    samples = [dataset[i] for i in range(sum(SPLIT))]
    starts = [sum(SPLIT[:i]) for i in range(len(SPLIT))]
    split = [pseudo_collate(samples[s:s + n]) for s, n in zip(starts, SPLIT)]
    whole = [pseudo_collate(samples)]
    effect = {}
    for mode in MODES:
        exact = mode == 'exact'
        diffs = relative_differences(calibrate_bn(model, split, len(split), width, exact),
                                     calibrate_bn(model, whole, 1, width, exact))
        worst = max(diffs, key=diffs.get)
        effect[mode] = dict(largest=diffs[worst], layer=worst,
                            first_layer=diffs[next(iter(diffs))],
                            layers_over_0_01=sum(d > 1e-2 for d in diffs.values()),
                            per_layer=diffs)
    return effect


def time_modes(model, batches: list, width: float, rounds: int, warmup: int = 1) -> dict:
    """Both modes on the same loaded batches, side by side."""
    times = {mode: [] for mode in MODES}

    def one_round(r: int, timed: bool) -> None:
        for mode in common.rotated(MODES, r):
            seconds, _ = common.clock(
                lambda: calibrate_bn(model, iter(batches), len(batches), width,
                                     exact=mode == 'exact'), torch.device('cpu'))
            if timed:
                times[mode].append(seconds)

    watch = common.run_rounds(warmup, rounds, one_round)
    return dict(seconds=times, median_s={m: statistics.median(t) for m, t in times.items()},
                exact_over_one_pass=common.paired_ratios(times['exact'], times['one_pass']),
                **watch.as_dict())


def run_task(task: str, args, tmp: str) -> dict:
    from mmengine.runner import Runner

    from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
    cfg, runner = trained_model(task, args, osp.join(tmp, 'work', task))
    model = runner.model
    loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=args.seed)
    batches = list(islice(loader, args.num_batches))
    if len(batches) < args.num_batches:
        raise SystemExit(f'{task}: the data gave {len(batches)} batches, not '
                         f'{args.num_batches}')
    depths = bn_depths(model, model.data_preprocessor(batches[0], False))
    networks = {s.network for s in trained_subnets(cfg, widths=DEMO_WIDTHS)}
    result = dict(config=CONFIGS[task], batch_size=loader.batch_size,
                  bn_layers=sum(1 for _ in batch_norms(model)), bn_depths=len(set(depths.values())),
                  demo_networks_calibrated=len(networks), widths={})
    for width in args.widths:
        timing = time_modes(model, batches, width, args.rounds)
        effect = batching_effect(model, loader.dataset, width)
        result['widths'][str(width)] = dict(timing=timing, effect=effect)
        med = timing['median_s']
        print(f'{task:<10} w{width:<5} one pass {med["one_pass"]:6.2f} s  exact '
              f'{med["exact"]:6.2f} s  (x{timing["exact_over_one_pass"]["median"]:.2f})  | '
              f'[3,3,2] vs [8]: one pass {effect["one_pass"]["largest"]:.3g} '
              f'({effect["one_pass"]["layer"]}), exact {effect["exact"]["largest"]:.2g}',
              flush=True)
    extra = statistics.mean(r['timing']['median_s']['exact'] - r['timing']['median_s']['one_pass']
                            for r in result['widths'].values())
    result['demo_extra_minutes_estimate'] = extra * len(networks) / 60
    return result


def accuracy_effect(checkpoint: str, args, work_dir: str) -> dict:
    """Val top-1 of the trained video demo's subnets (the demo's widths at the
    largest and the smallest view), calibrated on the demo's ``--num-batches``
    batches in each mode; the same calibration samples and val clips."""
    from mmengine.runner import Runner

    from mutual_mm.deploy import Subnet, apply_subnet
    from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
    from mutual_mm.utils import load_config
    cfg = common.runner_cfg(load_config(osp.join(common.ROOT, CONFIGS['video'])), work_dir,
                            args.seed)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.load_checkpoint(checkpoint, map_location='cpu')
    model = runner.model
    calib = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=args.seed)
    val = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=args.seed)
    views = [(48, 8), (30, 3)]  # the config's largest and smallest trained views
    rows = []
    for width in DEMO_WIDTHS:
        for scale, frames in views:
            subnet = Subnet(width, scale, frames)
            row = dict(subnet=subnet.key)
            for mode in MODES:
                apply_subnet(model, calib.dataset, subnet)
                calibrate_bn(model, iter(calib), args.num_batches, width, mode == 'exact')
                apply_subnet(model, val.dataset, subnet)
                model.eval()
                with torch.no_grad():
                    hits = [int(o.pred_label.item() == o.gt_label.item())
                            for batch in val for o in model.test_step(batch)]
                row[mode] = sum(hits) / len(hits)
            rows.append(row)
            print(f'video {subnet.key:<16} val top-1: one pass {row["one_pass"]:.4f}, '
                  f'exact {row["exact"]:.4f}', flush=True)
    return dict(checkpoint=checkpoint, val_clips=len(val.dataset), rows=rows,
                largest_abs_difference=max(abs(r['exact'] - r['one_pass']) for r in rows))


def provided_batches(name: str, num_batches: int = 2, batch: int = 2) -> list:
    """Random samples as the provided config's pipeline packs them: clips of 8
    frames of 64x64 px, or 128x160 images with boxes and masks."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(num_batches):
        if name == 'slowonly_r50':
            from mmaction.structures import ActionDataSample
            batches.append(dict(
                inputs=[torch.randint(0, 256, (1, 3, 8, 64, 64), generator=g,
                                      dtype=torch.uint8) for _ in range(batch)],
                data_samples=[ActionDataSample().set_gt_label(0) for _ in range(batch)]))
        else:
            from mmdet.testing import demo_mm_inputs
            batches.append(demo_mm_inputs(batch_size=batch, image_shapes=[(3, 128, 160)] * batch,
                                          num_items=[2] * batch, with_mask=True))
    return batches


def run_provided(name: str, args) -> dict:
    """Cost only: the provided config's model, random weights, at full width."""
    from mutual_mm.utils import build_model, load_config
    model = build_model(load_config(osp.join(common.ROOT, PROVIDED[name])))
    batches = provided_batches(name)
    depths = bn_depths(model, model.data_preprocessor(batches[0], False))
    timing = time_modes(model, batches, 1.0, rounds=1, warmup=0)  # minutes already
    med = timing['median_s']
    print(f'{name:<14} w1.0   one pass {med["one_pass"]:6.2f} s  exact {med["exact"]:6.2f} s  '
          f'(x{timing["exact_over_one_pass"]["median"]:.2f}); {len(depths)} BN layers at '
          f'{len(set(depths.values()))} depths', flush=True)
    return dict(config=PROVIDED[name], weights='random initialisation', batch_size=2,
                num_batches=len(batches), input=('8 frames x 64x64 px' if name == 'slowonly_r50'
                                                 else '128x160 px'),
                bn_layers=sum(1 for _ in batch_norms(model)),
                bn_depths=len(set(depths.values())), timing=timing)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    cpu = lscpu_model_name()
    print(common.describe_machine(device) + f' | {cpu}')
    from make_demo_data import make_demo_data  # tools/
    results, accuracy = {}, None
    checkpoint = args.video_checkpoint and osp.abspath(args.video_checkpoint)
    with tempfile.TemporaryDirectory(prefix='bn_calibration_exact_') as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # the demo configs' data paths are relative to the workspace
        try:
            # enough training samples for --num-batches batches of each config
            # (+8: mmdet drops images without objects from a training set; the
            # demo's 64 val clips for the accuracy)
            make_demo_data(osp.join('data', 'mutual_demo'),
                           images=(4 * args.num_batches + 8, 4),
                           videos=(8 * args.num_batches + 8, 64 if checkpoint else 4))
            for task in args.tasks:
                results[task] = run_task(task, args, tmp)
            if checkpoint:
                accuracy = accuracy_effect(checkpoint, args, osp.join(tmp, 'work', 'acc'))
        finally:
            os.chdir(cwd)
    provided = {name: run_provided(name, args) for name in args.provided}
    for task, r in results.items():
        print(f'{task}: {r["bn_layers"]} BN layers at {r["bn_depths"]} depths (the exact '
              f'passes); batch {r["batch_size"]}, {args.num_batches} batches; the demo '
              f'calibrates {r["demo_networks_calibrated"]} networks: about '
              f'{r["demo_extra_minutes_estimate"]:.1f} min more with exact=True (at the '
              'full view; smaller views cost less)')
    common.save_json(args.out, dict(
        **common.environment('bn_calibration_exact', device), cpu_model=cpu,
        weights=(f'the demo config trained {args.train_iters} iterations from random '
                 'initialisation on generated demo data' if args.train_iters
                 else 'random initialisation'),
        args=vars(args), tasks=results, provided=provided, video_accuracy=accuracy))
    return 0


if __name__ == '__main__':
    sys.path.insert(0, osp.join(common.ROOT, 'tools'))
    sys.exit(main())
