"""Deployment cost: time per subnet of BN calibration and of one lookup-table
row, for the provided SlowOnly and Mask R-CNN MutualNet configs.

The provided configs with only data, sizes and class counts changed, random
weights (timing does not depend on trained values, except that a random Mask
R-CNN keeps ``max_per_img=100`` detections, so its mask head and COCO evaluation
run on the most boxes they can): ``slowonly`` (Slow-8x8 R50, widths [0.63, 1.0],
views {S, 0.8S, 0.63S} x {8, 5, 3} frames, generated mp4 clips, ``AccMetric``)
and ``maskrcnn`` (R50-FPN, widths [0.7, 1.0], scales 1000x{600, 480, 360, 240}
scaled to ``--det-short``, generated COCO images with masks, bbox + segm). Per
subnet, what ``tools/calibrate_bn.py`` and ``tools/build_lookup_table.py`` do:

* ``calib``: ``calibrate_bn`` on ``--num-batches`` batches at the subnet's view
  (it runs only the model parts that hold BN layers: the JSON lists the parts
  that ran); ``data``: the same batches loaded alone;
* one table row: ``test`` = ``runner.test()`` with ``CalibratedSubnetHook`` at
  the subnet, a probe batch, and ``measure_complexity`` per FLOPs scope.

Timed: {min, max width} x {largest, smallest scale} [x {most, fewest frames}],
after a warm-up (one test pass); the median is extrapolated to every trained subnet.

    .venv/bin/python benchmarks/bench_calibration.py --threads 1    # both setups
    .venv/bin/python benchmarks/bench_calibration.py --only slowonly --num-batches 8

Output: a table, and ``--out`` (default ``benchmarks/results/calibration_<device>.json``).
"""
from __future__ import annotations

import copy
import os.path as osp
import statistics
import sys
import tempfile
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers the components)
from mutual_mm.datasets.pipeline_views import set_pipeline_view  # noqa: E402
from mutual_mm.deploy import (CalibratedSubnetHook, Subnet, batch_norms,  # noqa: E402
                              calibrate_bn, measure_complexity, trained_subnets)

warnings.filterwarnings('ignore')  # the host libraries' deprecation notes, every batch

CONFIGS = dict(
    slowonly='configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py',
    maskrcnn='configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py')
SCOPES = dict(slowonly=['model'], maskrcnn=['model', 'features'])


def parse_args(argv=None):
    p = common.arg_parser(__doc__, cudnn=False)
    p.add_argument('--only', choices=sorted(CONFIGS), default=None)
    p.add_argument('--num-batches', type=int, default=None,
                   help='calibration batches per subnet (cpu 4, cuda 10: the tools\' default)')
    p.add_argument('--batch', type=int, default=None, help='loaders\' batch (cpu 2, cuda 8)')
    p.add_argument('--test-samples', type=int, default=None, help='test split (cpu 8, cuda 64)')
    p.add_argument('--video-size', type=int, default=None,
                   help='full-network crop S (cpu 112, cuda 224)')
    p.add_argument('--det-short', type=int, default=None,
                   help='short edge of the full-network scale (the 600 of 1000x600; cpu 200, '
                        'cuda 600); images are generated at 16/15 x 4/5 of it')
    return common.finish_args(
        p, p.parse_args(argv), 'calibration_{device}',
        positive=('num_batches', 'batch', 'test_samples', 'video_size', 'det_short'),
        num_batches=(10, 4), batch=(8, 2), test_samples=(64, 8), video_size=(224, 112),
        det_short=(600, 200))


def generated_cfg(name: str, args, root: str):
    """The provided config on generated data (calibration batches: train; the
    test split), and its views."""
    from tools.data_generators import shapes_and_motion as synthetic
    from mutual_mm.utils import load_config
    cfg = load_config(osp.join(common.ROOT, CONFIGS[name]))
    even = lambda x: max(2, 2 * int(round(x / 2)))  # noqa: E731
    # generated mp4 frames: sizes the codec does not pad (16 px blocks)
    mult16 = lambda x: max(16, 16 * int(-(-x // 16)))  # noqa: E731

    def splits(make, **kw):
        return {split: make(osp.join(root, split), num, seed=seed, **kw) for split, num, seed in
                (('train', args.num_batches * args.batch, args.seed),
                 ('test', args.test_samples, args.seed + 1))}

    if name == 'slowonly':
        size = args.video_size
        scales, frames = common.view_sizes(size, 8)
        short = mult16(size * 8 / 7)  # 256 for 224
        video = dict(size=(mult16(short * 4 / 3), short), num_frames=72)
        anns = splits(synthetic.make_motion_videos, **video)
        cfg.model.backbone.pretrained = None
        cfg.model.cls_head.num_classes = len(synthetic.MOTION_CLASSES)
        resize = dict(type='Resize', scale=(-1, short))
        pack = [dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
        train = common.decoded_clip(8, 8) + [
            resize, dict(type='RandomResizedCrop'), dict(type='Flip', flip_ratio=0.5),
            dict(type='MultiResolution', scales=scales, frames=frames,
                 transforms=[dict(type='Resize', keep_ratio=False)] + pack)]
        test = common.decoded_clip(8, 8, test_mode=True) + [
            resize, dict(type='CenterCrop', crop_size=size),
            dict(type='Resize', scale=(size, size), keep_ratio=False)] + pack

        def dataset(split, pipeline, **extra):
            return common.video_dataset_cfg(anns[split], osp.join(root, split), pipeline, **extra)
        cfg.test_evaluator, cfg.test_cfg = dict(type='AccMetric'), dict(type='TestLoop')
        views = dict(scales=scales, frames=frames, crop=size, video_size=list(video['size']))
        train_extra = {}
    else:
        short = args.det_short
        scales = [(even(1000 * short / 600), even(s * short / 600)) for s in (600, 480, 360, 240)]
        img_size = (even(short * 16 / 15), even(short * 4 / 5))  # 640x480 for 600
        anns = splits(synthetic.make_coco_shapes, size=img_size)
        cfg.model.backbone.init_cfg = None
        for head in (cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head):
            head.num_classes = len(synthetic.SHAPE_CLASSES)
        train, test = copy.deepcopy(cfg.train_pipeline), copy.deepcopy(cfg.test_pipeline)
        train[-1]['scales'] = scales
        next(t for t in test if t['type'] == 'Resize')['scale'] = scales[0]

        def dataset(split, pipeline, **extra):
            return dict(type='CocoDataset', data_root=osp.join(root, split),
                        ann_file=anns[split], data_prefix=dict(img=''),
                        metainfo=dict(classes=synthetic.SHAPE_CLASSES), pipeline=pipeline,
                        **extra)
        cfg.test_evaluator = dict(cfg.val_evaluator, ann_file=anns['test'])
        views = dict(scales=[list(s) for s in scales], image_size=list(img_size))
        train_extra = dict(filter_cfg=dict(filter_empty_gt=True))
    cfg.train_dataloader = common.loader_cfg(dataset('train', train, **train_extra), args.batch,
                                             shuffle=True)
    cfg.test_dataloader = common.loader_cfg(dataset('test', test, test_mode=True), args.batch,
                                            shuffle=False)
    return common.runner_cfg(cfg, osp.join(root, 'work'), args.seed), views


def run_setup(name: str, args, device, root: str) -> dict:
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
    from mutual_mm.hosts import host_of
    cfg, views = generated_cfg(name, args, root)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    MMLogger.get_current_instance().setLevel('ERROR')
    # random weights carry no record of MutualNet training (only width 1 counts
    # as trained then); timing does not depend on it
    hook = CalibratedSubnetHook(allow_untrained=True)
    runner.register_custom_hooks([hook])
    model = runner.model.to(device)
    loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=runner.seed)
    probe = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=runner.seed)
    clock = lambda fn: common.clock(fn, device, quiet=True)  # noqa: E731
    trained = trained_subnets(cfg)
    ends = lambda xs: list(dict.fromkeys([xs[0], xs[-1]]))  # noqa: E731
    subnets = [Subnet(w, s, f) for w in ends(sorted({c.width for c in trained}, reverse=True))
               for s in ends(list(dict.fromkeys(c.scale for c in trained)))
               for f in ends(list(dict.fromkeys(c.frames for c in trained)))]
    print(f'\n{name}: {len(subnets)} of {len(trained)} trained subnets timed; views {views}')

    def calibrate(c, n):
        set_pipeline_view(loader.dataset, c.scale, c.frames)
        return calibrate_bn(model, iter(loader), n, c.width)

    saved = {k: v.clone() for k, v in model.state_dict().items()
             if 'running_' in k or 'num_batches_tracked' in k}
    with common.Watch() as watch:
        ran = []  # the model's children that calibration runs
        handles = [child.register_forward_pre_hook(
            lambda *_, name=n: None if name in ran else ran.append(name))
            for n, child in model.named_children()]
        hook.calibration = {subnets[0].key: dict(config=subnets[0].as_dict(),
                                                 stats=calibrate(subnets[0], 1))}
        for h in handles:
            h.remove()
        hook.subnet = subnets[0]
        print(f'  warm-up (1 calibration batch + 1 test pass): {clock(runner.test)[0]:.1f} s')
        rows, calibration, n = [], {}, args.num_batches
        for c in subnets:
            set_pipeline_view(loader.dataset, c.scale, c.frames)
            data_s, _ = clock(lambda: sum(1 for _ in zip(range(n), loader)))
            calib_s, stats = clock(lambda: calibrate(c, n))
            calibration[c.key] = dict(config=c.as_dict(), stats=stats)
            rows.append(dict(config=c.as_dict(), key=c.key, data_s=data_s, calib_s=calib_s,
                             calib_per_batch_s=calib_s / n))
        model.load_state_dict(saved, strict=False)
        hook.calibration = calibration
        for c, row in zip(subnets, rows):
            hook.subnet = c
            row['test_s'], metrics = clock(runner.test)
            set_pipeline_view(probe.dataset, c.scale, c.frames)
            row['probe_s'], batch = clock(lambda: next(iter(probe)))
            metric = host_of(model).main_metric(metrics)
            row['metric'] = float(metrics[metric])
            for scope in SCOPES[name]:
                seconds, (flops, params) = clock(lambda: measure_complexity(model, batch, scope))
                row.update({f'flops_{scope}_s': seconds, f'gflops_{scope}': flops / 1e9,
                            f'mparams_{scope}': params / 1e6})
            row['row_s'] = row['test_s'] + row['probe_s'] + row[f'flops_{SCOPES[name][0]}_s']
            print(f"  {c.key:<22} calib {row['calib_s']:6.2f} s ({row['data_s']:.2f} s data), "
                  f"test {row['test_s']:.2f} s, " + ', '.join(
                      f"flops[{s}] {row[f'flops_{s}_s']:.2f} s ({row[f'gflops_{s}']:.2f} G)"
                      for s in SCOPES[name]), flush=True)
    keys = ['calib_s', 'data_s', 'calib_per_batch_s', 'test_s', 'probe_s', 'row_s'] + \
        [f'flops_{s}_s' for s in SCOPES[name]]
    summary = {k: statistics.median(r[k] for r in rows) for k in keys}
    summary.update(per_config_s=summary['calib_s'] + summary['row_s'],
                   trained_configs=len(trained))
    summary['full_table_estimate_min'] = summary['per_config_s'] * len(trained) / 60
    print(f"median: calib {summary['calib_s']:.2f} s, row {summary['row_s']:.2f} s; per subnet "
          f"{summary['per_config_s']:.1f} s, the {len(trained)} trained: "
          f"~{summary['full_table_estimate_min']:.1f} min; calibration ran {', '.join(ran)} "
          f"({sum(1 for _ in batch_norms(model))} BN layers); "
          + common.describe_load(watch.as_dict()))
    return dict(setup=name, config_file=CONFIGS[name], views=views, batch=args.batch,
                num_batches=n, test_samples=args.test_samples,
                bn_layers=sum(1 for _ in batch_norms(model)), calibration_ran=ran,
                flops_scopes=SCOPES[name], metric=metric, **watch.as_dict(),
                trained_config_keys=[c.key for c in trained], rows=rows, summary=summary)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    print(common.describe_machine(device))
    with tempfile.TemporaryDirectory(prefix='bench_calibration_') as tmp:
        results = {name: run_setup(name, args, device, osp.join(tmp, name))
                   for name in ([args.only] if args.only else CONFIGS)}
    common.save_json(args.out, dict(
        **common.environment('bench_calibration', device),
        weights='random initialisation (timing only; metrics meaningless)',
        args=vars(args), setups=results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
