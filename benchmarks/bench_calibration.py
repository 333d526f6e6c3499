"""Deployment cost: time per configuration of BN calibration and of one
lookup-table row, for the provided SlowOnly and Mask R-CNN MutualNet configs.

Setups (the provided configs, only data, sizes and class counts changed; the
weights are the random initialisation: timing does not depend on trained
values, except that a random Mask R-CNN keeps ``max_per_img=100`` detections
per image, so its mask head and COCO evaluation run on the most boxes they can):

* ``slowonly``: ``configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-...py``
  (Slow-8x8 R50, width grid [0.63, 1.0] step 0.05, views {S, 0.8S, 0.63S} x
  {8, 5, 3} frames) on generated mp4 clips (``make_motion_videos``); test
  pipeline: one clip, ``Resize(-1, 8/7 S)``, ``CenterCrop(S)``, then the
  ``Resize(S, S)`` a configuration sets (as ``configs/demo/``), ``AccMetric``;
* ``maskrcnn``: ``configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py``
  (R50-FPN, width grid [0.7, 1.0], scales 1000x{600, 480, 360, 240} scaled to
  ``--det-short``) on generated COCO images with masks (``make_coco_shapes``);
  its own test pipeline and ``CocoMetric`` (bbox + segm).

Per configuration (width x scale [x frames]), what ``tools/calibrate_bn.py``
and ``tools/build_lookup_table.py`` do, timed piece by piece:

* ``calib``: :func:`~mutual_mm.deploy.calibrate_bn` on ``--num-batches``
  batches of the calibration loader (training samples through the test
  pipeline, pointed at the configuration by ``set_pipeline_view``), and
  ``data``: iterating the same batches without the model (so ``calib - data``
  is the forward passes);
* one lookup-table row: ``test`` = ``runner.test()`` with the
  ``CalibratedSubnetHook`` at the configuration (width, pipeline, the calibrated
  statistics; the whole test split through the model and the metric), then
  ``flops`` = one probe batch loaded and
  :func:`~mutual_mm.deploy.complexity.measure_complexity` (FlopAnalyzer trace +
  static export for the parameters), per FLOPs scope.

The configurations timed default to {min, max width} x {largest, smallest
scale} [x {most, fewest frames}]; the report extrapolates the median to every
configuration the config trained (the full table ``tools/`` would build by
default). A warm-up (one calibration batch and one test pass, untimed) takes the
one-time costs (building the test loop, first decoder/allocator use) first.

Run from the repository root::

    .venv/bin/python benchmarks/bench_calibration.py               # both setups
    .venv/bin/python benchmarks/bench_calibration.py --only slowonly --num-batches 8
    .venv/bin/python benchmarks/bench_calibration.py --device cuda  # GPU-sized defaults

Prints a table and writes everything to ``--out`` (JSON, default
``benchmarks/results/calibration_<device>.json``).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import json
import logging
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time
import warnings

warnings.filterwarnings('ignore')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers the components)

SLOWONLY_CONFIG = osp.join(
    ROOT, 'configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py')
MASKRCNN_CONFIG = osp.join(ROOT, 'configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py')
DET_SHORT_EDGES = (600, 480, 360, 240)  # the provided config's 1000x{...} scales
SETUPS = ('slowonly', 'maskrcnn')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=('cpu', 'cuda'),
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--only', choices=SETUPS, default=None)
    p.add_argument('--num-batches', type=int, default=None,
                   help='calibration batches per configuration (default: 4 on cpu, '
                        '10 on cuda, the tools\' default)')
    p.add_argument('--batch', type=int, default=None,
                   help='batch size of the calibration and test loaders '
                        '(default: 2 on cpu, 8 on cuda)')
    p.add_argument('--test-samples', type=int, default=None,
                   help='size of the test split (default: 8 on cpu, 64 on cuda)')
    p.add_argument('--video-size', type=int, default=None,
                   help='full-network crop S (default: 112 on cpu, 224 on cuda)')
    p.add_argument('--det-short', type=int, default=None,
                   help='short edge of the full-network scale (the 600 of 1000x600; '
                        'default 200 on cpu, 600 on cuda); images are generated at '
                        '16/15 x 4/5 of it (640x480 for 600)')
    p.add_argument('--widths', type=float, nargs='+', default=None,
                   help='widths timed (default: the min and max of the trained range)')
    p.add_argument('--all-views', action='store_true',
                   help='time every trained scale (x frames), not only the extremes')
    p.add_argument('--det-flops-scopes', nargs='+', choices=('model', 'features'),
                   default=['model', 'features'],
                   help="Mask R-CNN FLOPs scopes timed ('model' = build_lookup_table's "
                        "default, 'features' = the demo's)")
    p.add_argument('--warmup', type=int, default=1, choices=(0, 1))
    p.add_argument('--threads', type=int, default=None,
                   help="torch.set_num_threads (CPU); default: torch's own. On a shared, "
                        'loaded machine 1 avoids OpenMP threads waiting on each other')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None)
    args = p.parse_args(argv)
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available():
        p.error('--device cuda but torch.cuda.is_available() is False')
    defaults = dict(num_batches=(10, 4), batch=(8, 2), test_samples=(64, 8),
                    video_size=(224, 112), det_short=(600, 200))
    for name, (gpu, cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, gpu if cuda else cpu)
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.out is None:
        args.out = osp.join(ROOT, 'benchmarks', 'results', f'calibration_{args.device}.json')
    return args


# ----------------------------------------------------------------- configs
def _even(x: float) -> int:
    return max(2, 2 * int(round(x / 2)))


def _mult16(x: float) -> int:
    # generated mp4 frames: decord needs sizes the codec does not pad (16 px blocks)
    return max(16, 16 * int(-(-x // 16)))


def slowonly_cfg(args, work_dir: str, data_root: str):
    from bench_mutual_step import view_sizes
    from mutual_mm.datasets.synthetic import MOTION_CLASSES, make_motion_videos
    from mutual_mm.utils import load_config
    cfg = load_config(SLOWONLY_CONFIG)
    size = args.video_size
    scales, frames = view_sizes(size, 8)
    short = _mult16(size * 8 / 7)  # 256 for 224
    clip_len, interval = 8, 8
    anns = {}
    for split, num, seed in (('train', args.num_batches * args.batch, args.seed),
                             ('test', args.test_samples, args.seed + 1)):
        anns[split] = make_motion_videos(osp.join(data_root, split), num_videos=num,
                                         size=(_mult16(short * 4 / 3), short),
                                         num_frames=clip_len * interval + 8, seed=seed)
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.num_classes = len(MOTION_CLASSES)
    head = [dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=clip_len, frame_interval=interval,
                 num_clips=1),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(-1, short))]
    train = head + [dict(type='RandomResizedCrop'), dict(type='Flip', flip_ratio=0.5),
                    dict(type='MultiResolution', scales=scales, frames=frames,
                         transforms=[dict(type='Resize', keep_ratio=False),
                                     dict(type='FormatShape', input_format='NCTHW'),
                                     dict(type='PackActionInputs')])]
    test = copy.deepcopy(head)
    test[1]['test_mode'] = True
    test += [dict(type='CenterCrop', crop_size=size),
             dict(type='Resize', scale=(size, size), keep_ratio=False),
             dict(type='FormatShape', input_format='NCTHW'),
             dict(type='PackActionInputs')]
    loader = dict(batch_size=args.batch, num_workers=0, persistent_workers=False)
    cfg.train_dataloader = dict(
        loader, sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type='VideoDataset', ann_file=anns['train'],
                     data_prefix=dict(video=osp.join(data_root, 'train')), pipeline=train))
    cfg.test_dataloader = dict(
        loader, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='VideoDataset', ann_file=anns['test'], test_mode=True,
                     data_prefix=dict(video=osp.join(data_root, 'test')), pipeline=test))
    cfg.test_evaluator = dict(type='AccMetric')
    cfg.test_cfg = dict(type='TestLoop')
    cfg.visualizer = dict(type='ActionVisualizer', vis_backends=[])
    views = dict(scales=scales, frames=frames, crop=size, test_resize_short=short,
                 video_size=[_mult16(short * 4 / 3), short],
                 video_frames=clip_len * interval + 8)
    return _common(cfg, args, work_dir), views, ['model']


def maskrcnn_cfg(args, work_dir: str, data_root: str):
    from mutual_mm.datasets.synthetic import SHAPE_CLASSES, make_coco_shapes
    from mutual_mm.utils import load_config
    cfg = load_config(MASKRCNN_CONFIG)
    short = args.det_short
    scales = [(_even(1000 * short / 600), _even(s * short / 600)) for s in DET_SHORT_EDGES]
    img_size = (_even(short * 16 / 15), _even(short * 4 / 5))  # 640x480 for 600
    anns = {}
    for split, num, seed in (('train', args.num_batches * args.batch, args.seed),
                             ('test', args.test_samples, args.seed + 1)):
        anns[split] = make_coco_shapes(osp.join(data_root, split), num_images=num,
                                       size=img_size, seed=seed)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = len(SHAPE_CLASSES)
    cfg.model.roi_head.mask_head.num_classes = len(SHAPE_CLASSES)
    train = copy.deepcopy(cfg.train_pipeline)
    train[-1]['scales'] = scales
    test = copy.deepcopy(cfg.test_pipeline)
    [t for t in test if t['type'] == 'Resize'][0]['scale'] = scales[0]
    meta = dict(classes=SHAPE_CLASSES)
    loader = dict(batch_size=args.batch, num_workers=0, persistent_workers=False)
    cfg.train_dataloader = dict(
        loader, sampler=dict(type='DefaultSampler', shuffle=True),
        batch_sampler=dict(type='AspectRatioBatchSampler'),
        dataset=dict(type='CocoDataset', data_root=osp.join(data_root, 'train'),
                     ann_file=anns['train'], data_prefix=dict(img=''), metainfo=meta,
                     filter_cfg=dict(filter_empty_gt=True), pipeline=train))
    cfg.test_dataloader = dict(
        loader, drop_last=False, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CocoDataset', data_root=osp.join(data_root, 'test'),
                     ann_file=anns['test'], data_prefix=dict(img=''), metainfo=meta,
                     test_mode=True, pipeline=test))
    cfg.test_evaluator = dict(cfg.val_evaluator, ann_file=anns['test'])
    cfg.visualizer = dict(type='DetLocalVisualizer', vis_backends=[])
    views = dict(scales=[list(s) for s in scales], image_size=list(img_size))
    return _common(cfg, args, work_dir), views, list(args.det_flops_scopes)


def _common(cfg, args, work_dir):
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.load_from = None
    cfg.resume = False
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    cfg.log_processor = dict(by_epoch=False)
    cfg.randomness = dict(seed=args.seed)
    cfg.env_cfg = dict(cfg.get('env_cfg', {}), cudnn_benchmark=False)
    return cfg


def timed_configs(all_configs, args, views):
    """{min, max width} x {largest, smallest scale} [x {most, fewest frames}]."""
    widths = sorted({c.width for c in all_configs})
    scales = list(dict.fromkeys(c.scale for c in all_configs))
    frames = list(dict.fromkeys(c.frames for c in all_configs))
    from mutual_mm.deploy import Subnet
    if args.widths:
        widths = args.widths
    else:
        widths = [widths[-1], widths[0]]
    if not args.all_views:
        scales = [scales[0], scales[-1]]
        frames = [frames[0], frames[-1]] if frames[0] is not None else [None]
    return [Subnet(w, s, f) for w in widths for s in scales for f in frames]


# ----------------------------------------------------------------- timing
@torch.no_grad()
def calibrate_features_only(model, batches, num_batches: int, width: float):
    """What :func:`~mutual_mm.deploy.calibrate_bn` does, but forwarding only
    ``extract_feat`` (backbone + neck) instead of the tensor-mode forward of the
    whole model: the same statistics when every BN layer sits in the feature
    extractor (checked against calibrate_bn's), for the cost of the features."""
    from itertools import islice

    from mutual_mm.deploy.bn_calibration import batch_norms, calibration_mode
    from mutual_mm.models.slimming import set_model_width, unwrap_model
    inner = unwrap_model(model)
    set_model_width(inner, width)
    channels = {}
    handles = [bn.register_forward_pre_hook(
        lambda m, a, name=name: channels.__setitem__(name, int(a[0].shape[1])))
        for name, bn in batch_norms(inner)]
    try:
        with calibration_mode(inner):
            for batch in islice(batches, num_batches):
                inner.extract_feat(inner.data_preprocessor(batch, False)['inputs'])
    finally:
        for h in handles:
            h.remove()
    return {name: (bn.running_mean[:channels[name]].clone(),
                   bn.running_var[:channels[name]].clone())
            for name, bn in batch_norms(inner) if name in channels}


def run_setup(name: str, args, tmp: str) -> dict:
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    from mutual_mm.deploy import CalibratedSubnetHook, calibrate_bn, trained_subnets
    from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
    from mutual_mm.deploy.bn_calibration import batch_norms
    from mutual_mm.deploy.complexity import measure_complexity
    from mutual_mm.datasets.pipeline_views import set_pipeline_view

    device = torch.device(args.device)
    quiet = contextlib.redirect_stdout(io.StringIO())
    t0 = time.perf_counter()
    with quiet:
        build = slowonly_cfg if name == 'slowonly' else maskrcnn_cfg
        cfg, views, scopes = build(args, osp.join(tmp, name, 'work'),
                                   osp.join(tmp, name, 'data'))
    data_s = time.perf_counter() - t0
    all_configs = trained_subnets(cfg)
    configs = timed_configs(all_configs, args, views)

    with quiet:
        runner = Runner.from_cfg(copy.deepcopy(cfg))
        MMLogger.get_current_instance().setLevel(logging.ERROR)
        hook = CalibratedSubnetHook()
        runner.register_custom_hooks([hook])
        model = runner.model.to(device)
        loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=runner.seed)
        probe_loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader),
                                               seed=runner.seed)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    def clock(fn):
        sync()
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            out = fn()
        sync()
        return time.perf_counter() - start, out

    def load_batches(n):
        for _, _batch in zip(range(n), loader):
            pass

    print(f'\n{name}: {len(configs)} configurations timed of {len(all_configs)} trained; '
          f'views {views}', flush=True)
    saved = {k: v.clone() for k, v in model.state_dict().items()
             if 'running_' in k or 'num_batches_tracked' in k}
    n_bn = sum(1 for _ in batch_norms(model))
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    if args.warmup:  # one-time costs: first decode/allocations, the test loop build
        first = configs[0]
        set_pipeline_view(loader.dataset, first.scale, first.frames)
        hook.calibration = {first.key: dict(config=first.as_dict(), stats=clock(
            lambda: calibrate_bn(model, iter(loader), 1, first.width))[1])}
        hook.subnet = first
        warm_s, _ = clock(runner.test)
        print(f'  warm-up (1 calibration batch + 1 test pass): {warm_s:.1f} s', flush=True)
    calibration, rows = {}, []
    for c in configs:
        set_pipeline_view(loader.dataset, c.scale, c.frames)
        data_t, _ = clock(lambda: load_batches(args.num_batches))
        calib_t, stats = clock(lambda: calibrate_bn(model, iter(loader), args.num_batches,
                                                    c.width))
        calibration[c.key] = dict(config=c.as_dict(), stats=stats)
        feat_t, feat_stats = clock(lambda: calibrate_features_only(
            model, iter(loader), args.num_batches, c.width))
        diff = max(float((a - b).abs().max()) for k in stats
                   for a, b in zip(stats[k], feat_stats[k]))
        rows.append(dict(config=c.as_dict(), key=c.key, data_s=data_t, calib_s=calib_t,
                         calib_minus_data_s=calib_t - data_t,
                         calib_per_batch_s=calib_t / args.num_batches,
                         calib_extract_feat_s=feat_t,
                         extract_feat_stats_max_abs_diff=diff,
                         extract_feat_same_layers=sorted(stats) == sorted(feat_stats)))
        print(f'  calib {c.key:<22} {calib_t:7.2f} s ({data_t:.2f} s of it data); '
              f'extract_feat only {feat_t:.2f} s (stats max |diff| {diff:.1e})', flush=True)
    model.load_state_dict(saved, strict=False)
    hook.calibration = calibration
    metric_name = None
    for c, row in zip(configs, rows):
        hook.subnet = c
        test_t, metrics = clock(runner.test)
        if metric_name is None:
            keys = list(metrics)
            metric_name = next((k for k in keys if k.endswith(('bbox_mAP', 'top1'))), keys[0])
        set_pipeline_view(probe_loader.dataset, c.scale, c.frames)
        probe_t, batch = clock(lambda: next(iter(probe_loader)))
        row.update(test_s=test_t, probe_s=probe_t, metric=float(metrics[metric_name]))
        flops_line = []
        for scope in scopes:
            flops_t, (flops, params) = clock(lambda: measure_complexity(model, batch, scope))
            row[f'flops_{scope}_s'] = flops_t
            row[f'gflops_{scope}'] = flops / 1e9
            row[f'mparams_{scope}'] = params / 1e6
            flops_line.append(f'flops[{scope}] {flops_t:.2f} s ({flops / 1e9:.2f} G)')
        row['row_s'] = test_t + probe_t + sum(row[f'flops_{s}_s'] for s in scopes[:1])
        print(f'  row   {c.key:<22} test {test_t:.2f} s, probe {probe_t:.2f} s, '
              + ', '.join(flops_line), flush=True)
    elapsed = time.perf_counter() - t_start
    load_after = os.getloadavg()

    def med(key):
        return statistics.median(r[key] for r in rows)

    summary = dict(calib_s=med('calib_s'), data_s=med('data_s'),
                   calib_extract_feat_s=med('calib_extract_feat_s'),
                   calib_per_batch_s=med('calib_per_batch_s'), test_s=med('test_s'),
                   probe_s=med('probe_s'), row_s=med('row_s'),
                   **{f'flops_{s}_s': med(f'flops_{s}_s') for s in scopes})
    per_config = summary['calib_s'] + summary['row_s']
    summary.update(per_config_s=per_config, trained_subnets=len(all_configs),
                   full_table_estimate_min=per_config * len(all_configs) / 60)
    return dict(
        setup=name, config_file=osp.relpath(SLOWONLY_CONFIG if name == 'slowonly'
                                           else MASKRCNN_CONFIG, ROOT),
        views=views, batch=args.batch, num_batches=args.num_batches,
        test_samples=args.test_samples, bn_layers=n_bn, flops_scopes=scopes,
        row_definition=f'test pass + probe batch + FLOPs count ({scopes[0]} scope)',
        metric=metric_name, data_generation_s=data_s, timing_wall_s=elapsed,
        loadavg_before=load_before, loadavg_after=load_after,
        trained_config_keys=[c.key for c in all_configs], rows=rows, summary=summary)


def print_summary(results: dict) -> None:
    for name, r in results.items():
        s = r['summary']
        print(f"\n{name} ({r['config_file']}): batch {r['batch']}, {r['num_batches']} "
              f"calibration batches, test split {r['test_samples']} samples; load avg "
              f"{r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}")
        scopes = r['flops_scopes']
        head = (f"{'configuration':<24}{'calib s':>9}{'(data)':>8}{'feat-only':>10}"
                f"{'test s':>8}"
                + ''.join(f"{'flops[' + sc + '] s':>19}" for sc in scopes)
                + f"{'row s':>8}{'GFLOPs':>9}")
        print(head)
        print('-' * len(head))
        for row in r['rows']:
            print(f"{row['key']:<24}{row['calib_s']:>9.2f}{row['data_s']:>8.2f}"
                  f"{row['calib_extract_feat_s']:>10.2f}"
                  f"{row['test_s']:>8.2f}"
                  + ''.join(f"{row[f'flops_{sc}_s']:>19.2f}" for sc in scopes)
                  + f"{row['row_s']:>8.2f}{row[f'gflops_{scopes[0]}']:>9.2f}")
        print(f"{'median':<24}{s['calib_s']:>9.2f}{s['data_s']:>8.2f}"
              f"{s['calib_extract_feat_s']:>10.2f}{s['test_s']:>8.2f}"
              + ''.join(f"{s[f'flops_{sc}_s']:>19.2f}" for sc in scopes)
              + f"{s['row_s']:>8.2f}")
        print(f"per configuration (calibration + row): {s['per_config_s']:.1f} s; the "
              f"{s['trained_subnets']} trained configurations: ~{s['full_table_estimate_min']:.1f}"
              f" min on this machine")
        diff = max(row['extract_feat_stats_max_abs_diff'] for row in r['rows'])
        print(f"calib = calibrate_bn (tensor forward of the whole model); feat-only = the "
              f"same through extract_feat only: {s['calib_extract_feat_s'] / s['calib_s']:.2f}x "
              f"the time, statistics max |diff| {diff:.1e}")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger('mmengine').setLevel(logging.ERROR)
    setups = [args.only] if args.only else list(SETUPS)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix='bench_calibration_')
    device = torch.device(args.device)
    name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else platform.processor() or platform.machine())
    print(f'torch {torch.__version__}, device {device} ({name}), '
          f'threads {torch.get_num_threads()}')
    results = {s: run_setup(s, args, tmp.name) for s in setups}
    print_summary(results)
    tmp.cleanup()
    import mmaction
    import mmdet
    import mmengine
    out = dict(
        benchmark='bench_calibration',
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        python=platform.python_version(), torch=torch.__version__,
        mmengine=mmengine.__version__, mmdet=mmdet.__version__,
        mmaction=mmaction.__version__, device=str(device), device_name=name,
        cpu_count=os.cpu_count(), num_threads=torch.get_num_threads(),
        weights='random initialisation (timing only; metrics meaningless)',
        args=vars(args), setups=results)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'\nwrote {osp.relpath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
