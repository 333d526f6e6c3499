"""BN calibration, exact (one pass per BN depth) against one pass, on the demo models.

``calibrate_bn(..., exact=False)`` runs the calibration batches once, each BN
layer normalizing with its batch's own statistics, so a layer behind another BN
gets statistics that depend on how the calibration set is batched; ``exact=True``
runs one pass per BN depth and every layer gets the whole set's statistics. Per
demo task (``--tasks``), its model trained ``--train-iters`` iterations on
generated demo data, at each width of ``--widths`` and the full view:

* cost: ``--num-batches`` calibration batches (the demo's 8), loaded once, then
  calibrated by both modes round-robin after one warm-up round: median seconds
  per mode and the median per-round ratio; the BN depths (the exact passes);
* effect: the loader's first 8 samples calibrated as batches [3, 3, 2] and as
  one batch of 8, in both modes: per BN layer, ``max |split - whole| / max
  |whole|`` over its channels and statistics; the largest, and its layer;
* with ``--video-checkpoint`` (a trained video demo): the val top-1 of its
  subnets (4 widths x the largest and smallest view) calibrated in each mode;
* the provided R-50 configs (random weights, 2 random batches of 2 small
  samples, one round): the cost at their BN depth.

    .venv/bin/python benchmarks/bn_calibration_exact.py --threads 1 \\
        --video-checkpoint work_dirs/mutual_demo/video/train/iter_500.pth

Output: a table, and ``--out`` (default benchmarks/results/bn_calibration_exact_cpu.json).
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import statistics
import sys
import tempfile
import warnings
from itertools import islice

import torch

sys.path[:0] = [osp.dirname(osp.dirname(osp.abspath(__file__)))]  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers the components)
from mutual_mm.deploy import batch_norms, calibrate_bn  # noqa: E402
from mutual_mm.deploy.bn_calibration import bn_depths, relative_differences  # noqa: E402

warnings.filterwarnings('ignore')  # the host libraries' deprecation notes, every batch

CONFIGS = dict(video='configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py',
               detection='configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py')
PROVIDED = dict(
    slowonly_r50='configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py',
    mask_rcnn_r50='configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py')
DEMO_WIDTHS = [1.0, 0.75, 0.5, 0.25]
SPLIT = [3, 3, 2]
MODES = ('one_pass', 'exact')
CPU = torch.device('cpu')


def parse_args(argv=None):
    p = common.arg_parser(__doc__, device=False, cudnn=False)
    p.add_argument('--tasks', nargs='*', choices=sorted(CONFIGS), default=['video', 'detection'])
    p.add_argument('--widths', type=float, nargs='+', default=[1.0, 0.5])
    p.add_argument('--num-batches', type=int, default=8)
    p.add_argument('--rounds', type=int, default=3, help='timed rounds (demo tasks)')
    p.add_argument('--train-iters', type=int, default=2,
                   help='training iterations before calibrating (0: random weights)')
    p.add_argument('--video-checkpoint', default=None, help='a trained video demo checkpoint')
    p.add_argument('--provided', nargs='*', choices=sorted(PROVIDED), default=sorted(PROVIDED))
    return common.finish_args(p, p.parse_args(argv), 'bn_calibration_exact_cpu',
                              positive=('num_batches', 'rounds'), non_negative=('train_iters',))


def time_modes(model, batches: list, width: float, rounds: int, warmup: int = 1) -> dict:
    times, watch = common.round_robin(
        {m: (lambda m=m: calibrate_bn(model, iter(batches), len(batches), width,
                                      exact=m == 'exact')) for m in MODES},
        CPU, warmup, rounds)
    return dict(seconds=times, median_s={m: statistics.median(t) for m, t in times.items()},
                exact_over_one_pass=common.paired_ratios(times['exact'], times['one_pass']),
                **watch.as_dict())


def demo_runner(task: str, args, work_dir: str, checkpoint=None):
    """The demo config's Runner: its model trained ``--train-iters`` iterations
    (or ``checkpoint`` loaded), and its calibration loader."""
    from mmengine.runner import Runner

    from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
    from mutual_mm.utils import load_config
    cfg = common.runner_cfg(load_config(osp.join(common.ROOT, CONFIGS[task])), work_dir,
                            args.seed)
    cfg.train_cfg.max_iters = max(args.train_iters, 1)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    if checkpoint:
        runner.load_checkpoint(checkpoint, map_location='cpu')
    elif args.train_iters:
        runner.train()
    return cfg, runner, Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=args.seed)


def run_task(task: str, args, tmp: str) -> dict:
    from mmengine.dataset import pseudo_collate

    from mutual_mm.deploy import trained_subnets
    cfg, runner, loader = demo_runner(task, args, osp.join(tmp, 'work', task))
    model = runner.model
    batches = list(islice(loader, args.num_batches))
    depths = bn_depths(model, model.data_preprocessor(batches[0], False))
    networks = {s.network for s in trained_subnets(cfg, widths=DEMO_WIDTHS)}
    samples = [loader.dataset[i] for i in range(sum(SPLIT))]
    split = [pseudo_collate(samples[sum(SPLIT[:i]):sum(SPLIT[:i + 1])]) for i in range(len(SPLIT))]
    result = dict(config=CONFIGS[task], batch_size=loader.batch_size,
                  bn_layers=sum(1 for _ in batch_norms(model)),
                  bn_depths=len(set(depths.values())), demo_networks_calibrated=len(networks),
                  widths={})
    for width in args.widths:
        timing, effect = time_modes(model, batches, width, args.rounds), {}
        for mode in MODES:
            exact = mode == 'exact'
            diffs = relative_differences(
                calibrate_bn(model, split, len(split), width, exact),
                calibrate_bn(model, [pseudo_collate(samples)], 1, width, exact))
            worst = max(diffs, key=diffs.get)
            effect[mode] = dict(largest=diffs[worst], layer=worst,
                                layers_over_0_01=sum(d > 1e-2 for d in diffs.values()),
                                per_layer=diffs)
        result['widths'][str(width)] = dict(timing=timing, effect=effect)
        med = timing['median_s']
        print(f'{task:<10} w{width:<5} one pass {med["one_pass"]:6.2f} s  exact '
              f'{med["exact"]:6.2f} s (x{timing["exact_over_one_pass"]["median"]:.2f}) | '
              f'[3,3,2] vs [8]: one pass {effect["one_pass"]["largest"]:.3g} '
              f'({effect["one_pass"]["layer"]}), exact {effect["exact"]["largest"]:.2g}',
              flush=True)
    extra = statistics.mean(r['timing']['median_s']['exact'] - r['timing']['median_s']['one_pass']
                            for r in result['widths'].values())
    result['demo_extra_minutes_estimate'] = extra * len(networks) / 60
    return result


def accuracy_effect(checkpoint: str, args, work_dir: str) -> dict:
    """Val top-1 of the trained video demo's subnets calibrated in each mode."""
    from mmengine.runner import Runner

    from mutual_mm.deploy import Subnet, apply_subnet
    cfg, runner, calib = demo_runner('video', args, work_dir, checkpoint)
    model = runner.model
    val = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=args.seed)
    rows = []
    for subnet in [Subnet(w, s, f) for w in DEMO_WIDTHS for s, f in ((48, 8), (30, 3))]:
        row = dict(subnet=subnet.key)
        for mode in MODES:
            apply_subnet(model, calib.dataset, subnet)
            calibrate_bn(model, iter(calib), args.num_batches, subnet.width, mode == 'exact')
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


def run_provided(name: str) -> dict:
    """Cost only: the provided config's model, random weights, full width, on
    random clips of 8 x 64x64 px or 128x160 images with boxes and masks."""
    from mutual_mm.utils import build_model, load_config
    model = build_model(load_config(osp.join(common.ROOT, PROVIDED[name])))
    g = torch.Generator().manual_seed(0)
    if name == 'slowonly_r50':
        from mmaction.structures import ActionDataSample
        batches = [dict(inputs=[torch.randint(0, 256, (1, 3, 8, 64, 64), generator=g,
                                              dtype=torch.uint8) for _ in range(2)],
                        data_samples=[ActionDataSample().set_gt_label(0) for _ in range(2)])
                   for _ in range(2)]
    else:
        from mmdet.testing import demo_mm_inputs
        batches = [demo_mm_inputs(batch_size=2, image_shapes=[(3, 128, 160)] * 2,
                                  num_items=[2] * 2, with_mask=True) for _ in range(2)]
    depths = bn_depths(model, model.data_preprocessor(batches[0], False))
    timing = time_modes(model, batches, 1.0, rounds=1, warmup=0)  # minutes already
    med = timing['median_s']
    print(f'{name:<14} w1.0   one pass {med["one_pass"]:6.2f} s  exact {med["exact"]:6.2f} s '
          f'(x{timing["exact_over_one_pass"]["median"]:.2f}); {len(depths)} BN layers at '
          f'{len(set(depths.values()))} depths', flush=True)
    return dict(config=PROVIDED[name], weights='random initialisation', batch_size=2,
                num_batches=2, bn_layers=len(depths), bn_depths=len(set(depths.values())),
                timing=timing)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    print(common.describe_machine(device))
    sys.path.insert(0, osp.join(common.ROOT, 'tools'))
    from make_demo_data import make_demo_data
    results, accuracy = {}, None
    checkpoint = args.video_checkpoint and osp.abspath(args.video_checkpoint)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='bn_calibration_exact_') as tmp:
        os.chdir(tmp)  # the demo configs' data paths are relative to the workspace
        try:
            # enough training samples for --num-batches batches (+8: mmdet drops images
            # without objects); the demo's 64 val clips for the accuracy
            make_demo_data(osp.join('data', 'mutual_demo'), images=(4 * args.num_batches + 8, 4),
                           videos=(8 * args.num_batches + 8, 64 if checkpoint else 4))
            results = {task: run_task(task, args, tmp) for task in args.tasks}
            if checkpoint:
                accuracy = accuracy_effect(checkpoint, args, osp.join(tmp, 'work', 'acc'))
        finally:
            os.chdir(cwd)
    provided = {name: run_provided(name) for name in args.provided}
    for task, r in results.items():
        print(f'{task}: {r["bn_layers"]} BN layers at {r["bn_depths"]} depths; the demo '
              f'calibrates {r["demo_networks_calibrated"]} networks: ~'
              f'{r["demo_extra_minutes_estimate"]:.1f} min more with exact=True')
    common.save_json(args.out, dict(
        **common.environment('bn_calibration_exact', device),
        weights=f'the demo config trained {args.train_iters} iterations on generated data',
        args=vars(args), tasks=results, provided=provided, video_accuracy=accuracy))
    return 0


if __name__ == '__main__':
    sys.exit(main())
