"""Deployment cost: time per configuration of BN calibration and of one
lookup-table row, for the provided SlowOnly and Mask R-CNN MutualNet configs.

The provided configs with only data, sizes and class counts changed, random
weights (timing does not depend on trained values, except that a random Mask
R-CNN keeps ``max_per_img=100`` detections, so its mask head and COCO
evaluation run on the most boxes they can): ``slowonly`` (Slow-8x8 R50, widths
[0.63, 1.0], views {S, 0.8S, 0.63S} x {8, 5, 3} frames, generated mp4 clips,
``AccMetric``) and ``maskrcnn`` (R50-FPN, widths [0.7, 1.0], scales
1000x{600, 480, 360, 240} scaled to ``--det-short``, generated COCO images with
masks, ``CocoMetric`` bbox + segm). Per configuration, what
``tools/calibrate_bn.py`` and ``tools/build_lookup_table.py`` do:

* ``calib``: ``calibrate_bn`` on ``--num-batches`` batches of the calibration
  loader at the configuration's view. It runs only backbone + neck when every BN
  layer sits there (both setups), else the whole tensor forward: the report
  lists the model's parts that ran. ``data``: the same batches loaded alone;
* one table row: ``test`` = ``runner.test()`` with ``CalibratedSubnetHook`` at
  the configuration, a probe batch, and ``measure_complexity`` per FLOPs scope.

Timed: {min, max width} x {largest, smallest scale} [x {most, fewest frames}]
(``--widths``, ``--all-views``), after a warm-up (one test pass); the median is
extrapolated to every configuration the config trained.

    .venv/bin/python benchmarks/bench_calibration.py               # both setups
    .venv/bin/python benchmarks/bench_calibration.py --only slowonly --num-batches 8
    .venv/bin/python benchmarks/bench_calibration.py --device cuda  # GPU-sized defaults

Output: a table, and ``--out`` (default ``benchmarks/results/calibration_<device>.json``).
"""
from __future__ import annotations

import copy
import os.path as osp
import statistics
import sys
import tempfile
import time
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
DET_SHORT_EDGES = (600, 480, 360, 240)  # the provided config's 1000x{...} scales


def parse_args(argv=None):
    p = common.arg_parser(__doc__, cudnn=False)
    p.add_argument('--only', choices=sorted(CONFIGS), default=None)
    p.add_argument('--num-batches', type=int, default=None,
                   help="calibration batches per configuration (default: 4 on cpu, 10 on "
                        "cuda, the tools' default)")
    p.add_argument('--batch', type=int, default=None,
                   help='batch size of the calibration and test loaders (default: 2 on cpu, '
                        '8 on cuda)')
    p.add_argument('--test-samples', type=int, default=None,
                   help='size of the test split (default: 8 on cpu, 64 on cuda)')
    p.add_argument('--video-size', type=int, default=None,
                   help='full-network crop S (default: 112 on cpu, 224 on cuda)')
    p.add_argument('--det-short', type=int, default=None,
                   help='short edge of the full-network scale (the 600 of 1000x600; default '
                        '200 on cpu, 600 on cuda); images are generated at 16/15 x 4/5 of it')
    p.add_argument('--widths', type=float, nargs='+', default=None,
                   help='widths timed (default: the min and max of the trained range)')
    p.add_argument('--all-views', action='store_true',
                   help='time every trained scale (x frames), not only the extremes')
    p.add_argument('--det-flops-scopes', nargs='+', choices=('model', 'features'),
                   default=['model', 'features'],
                   help="Mask R-CNN FLOPs scopes timed ('model' = build_lookup_table's "
                        "default, 'features' = the demo's)")
    p.add_argument('--warmup', type=int, default=1, choices=(0, 1))
    return common.finish_args(
        p, p.parse_args(argv), 'calibration_{device}',
        positive=('num_batches', 'batch', 'test_samples', 'video_size', 'det_short'),
        num_batches=(10, 4), batch=(8, 2), test_samples=(64, 8), video_size=(224, 112),
        det_short=(600, 200))


# ------------------------------------------------------------------ configs
def _even(x: float) -> int:
    return max(2, 2 * int(round(x / 2)))


def _mult16(x: float) -> int:
    # generated mp4 frames: decord needs sizes the codec does not pad (16 px blocks)
    return max(16, 16 * int(-(-x // 16)))


def generate_splits(make, data_root: str, args, **kw) -> dict:
    """Generated data: the calibration batches (train) and the test split."""
    return {split: make(osp.join(data_root, split), num, seed=seed, **kw)
            for split, num, seed in (('train', args.num_batches * args.batch, args.seed),
                                     ('test', args.test_samples, args.seed + 1))}


def slowonly_cfg(cfg, args, data_root: str):
    from mutual_mm.datasets.synthetic import MOTION_CLASSES, make_motion_videos
    size, clip_len, interval = args.video_size, 8, 8
    scales, frames = common.view_sizes(size, clip_len)
    short = _mult16(size * 8 / 7)  # 256 for 224
    video = dict(size=(_mult16(short * 4 / 3), short), num_frames=clip_len * interval + 8)
    anns = generate_splits(make_motion_videos, data_root, args, **video)
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.num_classes = len(MOTION_CLASSES)
    resize = dict(type='Resize', scale=(-1, short))
    pack = [dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    train = common.decoded_clip(clip_len, interval) + [
        resize, dict(type='RandomResizedCrop'), dict(type='Flip', flip_ratio=0.5),
        dict(type='MultiResolution', scales=scales, frames=frames,
             transforms=[dict(type='Resize', keep_ratio=False)] + pack)]
    test = common.decoded_clip(clip_len, interval, test_mode=True) + [
        resize, dict(type='CenterCrop', crop_size=size),
        dict(type='Resize', scale=(size, size), keep_ratio=False)] + pack
    cfg.train_dataloader = common.loader_cfg(common.video_dataset_cfg(
        anns['train'], osp.join(data_root, 'train'), train), args.batch, shuffle=True)
    cfg.test_dataloader = common.loader_cfg(common.video_dataset_cfg(
        anns['test'], osp.join(data_root, 'test'), test, test_mode=True), args.batch,
        shuffle=False)
    cfg.test_evaluator = dict(type='AccMetric')
    cfg.test_cfg = dict(type='TestLoop')
    return dict(scales=scales, frames=frames, crop=size, test_resize_short=short,
                video_size=list(video['size']), video_frames=video['num_frames'])


def maskrcnn_cfg(cfg, args, data_root: str):
    from mutual_mm.datasets.synthetic import SHAPE_CLASSES, make_coco_shapes
    short = args.det_short
    scales = [(_even(1000 * short / 600), _even(s * short / 600)) for s in DET_SHORT_EDGES]
    img_size = (_even(short * 16 / 15), _even(short * 4 / 5))  # 640x480 for 600
    anns = generate_splits(make_coco_shapes, data_root, args, size=img_size)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = len(SHAPE_CLASSES)
    cfg.model.roi_head.mask_head.num_classes = len(SHAPE_CLASSES)
    train = copy.deepcopy(cfg.train_pipeline)
    train[-1]['scales'] = scales
    test = copy.deepcopy(cfg.test_pipeline)
    next(t for t in test if t['type'] == 'Resize')['scale'] = scales[0]

    def coco(split, pipeline, **extra):
        return dict(type='CocoDataset', data_root=osp.join(data_root, split),
                    ann_file=anns[split], data_prefix=dict(img=''),
                    metainfo=dict(classes=SHAPE_CLASSES), pipeline=pipeline, **extra)

    cfg.train_dataloader = common.loader_cfg(
        coco('train', train, filter_cfg=dict(filter_empty_gt=True)), args.batch, shuffle=True,
        batch_sampler=dict(type='AspectRatioBatchSampler'))
    cfg.test_dataloader = common.loader_cfg(coco('test', test, test_mode=True), args.batch,
                                            shuffle=False, drop_last=False)
    cfg.test_evaluator = dict(cfg.val_evaluator, ann_file=anns['test'])
    return dict(scales=[list(s) for s in scales], image_size=list(img_size))


def build_cfg(name: str, args, tmp: str):
    """The setup's config on generated data, and its views."""
    from mutual_mm.utils import load_config
    cfg = load_config(osp.join(common.ROOT, CONFIGS[name]))
    build = slowonly_cfg if name == 'slowonly' else maskrcnn_cfg
    views = build(cfg, args, osp.join(tmp, name, 'data'))
    return common.runner_cfg(cfg, osp.join(tmp, name, 'work'), args.seed), views


def timed_subnets(trained, args):
    """{min, max width} x {largest, smallest scale} [x {most, fewest frames}]."""
    widths = sorted({c.width for c in trained})
    scales = list(dict.fromkeys(c.scale for c in trained))
    frames = list(dict.fromkeys(c.frames for c in trained))
    widths = args.widths or [widths[-1], widths[0]]
    if not args.all_views:
        scales, frames = [scales[0], scales[-1]], list(dict.fromkeys([frames[0], frames[-1]]))
    return [Subnet(w, s, f) for w in widths for s in scales for f in frames]


# ------------------------------------------------------------------- timing
def children_run(model, fn):
    """``(fn(), the names of the model's children that ran during it)``: what
    the report says calibration ran is what did run."""
    ran = []
    handles = [child.register_forward_pre_hook(
        lambda module, inputs, name=name: None if name in ran else ran.append(name))
        for name, child in model.named_children()]
    try:
        return fn(), ran
    finally:
        for handle in handles:
            handle.remove()


class Setup:
    """One setup's runner, calibration loader and probe loader."""

    def __init__(self, name: str, args, device, tmp: str):
        from mmengine.logging import MMLogger
        from mmengine.runner import Runner

        from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
        from mutual_mm.hosts import host_of
        start_s = time.perf_counter()
        self.cfg, self.views = build_cfg(name, args, tmp)
        self.data_generation_s = time.perf_counter() - start_s
        self.runner = Runner.from_cfg(copy.deepcopy(self.cfg))
        MMLogger.get_current_instance().setLevel('ERROR')
        # random weights, no checkpoint: no record of MutualNet training, which
        # counts only width 1 as trained; timing does not depend on it
        self.hook = CalibratedSubnetHook(allow_untrained=True)
        self.runner.register_custom_hooks([self.hook])
        self.model = self.runner.model.to(device)
        self.host = host_of(self.model)
        seed = self.runner.seed
        self.loader = Runner.build_dataloader(calibration_dataloader_cfg(self.cfg), seed=seed)
        self.probe_loader = Runner.build_dataloader(copy.deepcopy(self.cfg.test_dataloader),
                                                    seed=seed)
        self.name, self.args, self.device = name, args, device
        self.scopes = args.det_flops_scopes if name == 'maskrcnn' else ['model']

    def clock(self, fn):
        return common.clock(fn, self.device, quiet=True)

    def calibrate(self, c: Subnet, num_batches: int):
        set_pipeline_view(self.loader.dataset, c.scale, c.frames)
        return calibrate_bn(self.model, iter(self.loader), num_batches, c.width)

    def warm_up(self, first: Subnet) -> list:
        """One calibration batch (which model parts it runs), then, with
        ``--warmup``, one test pass: the one-time costs go first."""
        stats, ran = children_run(self.model, lambda: self.calibrate(first, 1))
        if self.args.warmup:
            self.hook.calibration = {first.key: dict(config=first.as_dict(), stats=stats)}
            self.hook.subnet = first
            warm_s, _ = self.clock(self.runner.test)
            print(f'  warm-up (1 calibration batch + 1 test pass): {warm_s:.1f} s', flush=True)
        return ran

    def time_calibration(self, c: Subnet):
        n = self.args.num_batches
        set_pipeline_view(self.loader.dataset, c.scale, c.frames)
        data_s, _ = self.clock(lambda: sum(1 for _ in zip(range(n), self.loader)))
        calib_s, stats = self.clock(lambda: self.calibrate(c, n))
        print(f'  calib {c.key:<22} {calib_s:7.2f} s ({data_s:.2f} s of it data)', flush=True)
        return dict(config=c.as_dict(), key=c.key, data_s=data_s, calib_s=calib_s,
                    calib_minus_data_s=calib_s - data_s, calib_per_batch_s=calib_s / n), stats

    def time_table_row(self, c: Subnet) -> dict:
        """What one row of the lookup table costs: a test pass at ``c``, a probe
        batch, the FLOPs count per scope (the row's time: the first scope's)."""
        self.hook.subnet = c
        test_s, metrics = self.clock(self.runner.test)
        set_pipeline_view(self.probe_loader.dataset, c.scale, c.frames)
        probe_s, batch = self.clock(lambda: next(iter(self.probe_loader)))
        self.metric = self.host.main_metric(metrics)
        row = dict(test_s=test_s, probe_s=probe_s, metric=float(metrics[self.metric]))
        for scope in self.scopes:
            seconds, (flops, params) = self.clock(
                lambda: measure_complexity(self.model, batch, scope))
            row.update({f'flops_{scope}_s': seconds, f'gflops_{scope}': flops / 1e9,
                        f'mparams_{scope}': params / 1e6})
        row['row_s'] = test_s + probe_s + row[f'flops_{self.scopes[0]}_s']
        print(f'  row   {c.key:<22} test {test_s:.2f} s, probe {probe_s:.2f} s, '
              + ', '.join(f"flops[{s}] {row[f'flops_{s}_s']:.2f} s "
                          f"({row[f'gflops_{s}']:.2f} G)" for s in self.scopes), flush=True)
        return row

    def run(self) -> dict:
        trained = trained_subnets(self.cfg)
        subnets = timed_subnets(trained, self.args)
        print(f'\n{self.name}: {len(subnets)} configurations timed of {len(trained)} trained; '
              f'views {self.views}', flush=True)
        saved = {k: v.clone() for k, v in self.model.state_dict().items()
                 if 'running_' in k or 'num_batches_tracked' in k}
        with common.Watch() as watch:
            ran = self.warm_up(subnets[0])
            rows, calibration = [], {}
            for c in subnets:
                row, stats = self.time_calibration(c)
                rows.append(row)
                calibration[c.key] = dict(config=c.as_dict(), stats=stats)
            self.model.load_state_dict(saved, strict=False)
            self.hook.calibration = calibration
            for c, row in zip(subnets, rows):
                row.update(self.time_table_row(c))
        return dict(
            setup=self.name, config_file=CONFIGS[self.name], views=self.views,
            batch=self.args.batch, num_batches=self.args.num_batches,
            test_samples=self.args.test_samples,
            bn_layers=sum(1 for _ in batch_norms(self.model)), calibration_ran=ran,
            flops_scopes=self.scopes,
            row_definition=f'test pass + probe batch + FLOPs count ({self.scopes[0]} scope)',
            metric=self.metric, data_generation_s=self.data_generation_s,
            **watch.as_dict(), trained_config_keys=[c.key for c in trained], rows=rows,
            summary=summarize(rows, self.scopes, len(trained)))


def summarize(rows, scopes, trained: int) -> dict:
    keys = ['calib_s', 'data_s', 'calib_per_batch_s', 'test_s', 'probe_s', 'row_s'] + \
        [f'flops_{s}_s' for s in scopes]
    summary = {k: statistics.median(r[k] for r in rows) for k in keys}
    per_config = summary['calib_s'] + summary['row_s']
    return dict(summary, per_config_s=per_config, trained_configs=trained,
                full_table_estimate_min=per_config * trained / 60)


def _times(label: str, row: dict, scopes) -> str:
    return (f"{label:<24}{row['calib_s']:>9.2f}{row['data_s']:>8.2f}{row['test_s']:>8.2f}"
            + ''.join(f"{row[f'flops_{sc}_s']:>19.2f}" for sc in scopes)
            + f"{row['row_s']:>8.2f}")


def print_summary(results: dict) -> None:
    for name, r in results.items():
        s, scopes = r['summary'], r['flops_scopes']
        print(f"\n{name} ({r['config_file']}): batch {r['batch']}, {r['num_batches']} "
              f"calibration batches, test split {r['test_samples']} samples; "
              + common.describe_load(r))
        head = (f"{'configuration':<24}{'calib s':>9}{'(data)':>8}{'test s':>8}"
                + ''.join(f"{'flops[' + sc + '] s':>19}" for sc in scopes)
                + f"{'row s':>8}{'GFLOPs':>9}")
        print(head + '\n' + '-' * len(head))
        for row in r['rows']:
            print(_times(row['key'], row, scopes) + f"{row[f'gflops_{scopes[0]}']:>9.2f}")
        print(_times('median', s, scopes))
        print(f"per configuration (calibration + row): {s['per_config_s']:.1f} s; the "
              f"{s['trained_configs']} trained configurations: "
              f"~{s['full_table_estimate_min']:.1f} min on this machine")
        print(f"calib = calibrate_bn, which ran the model's {', '.join(r['calibration_ran'])} "
              f"({r['bn_layers']} BN layers); (data) = loading the same batches alone")


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    print(common.describe_machine(device))
    with tempfile.TemporaryDirectory(prefix='bench_calibration_') as tmp:
        results = {name: Setup(name, args, device, tmp).run()
                   for name in ([args.only] if args.only else CONFIGS)}
    print_summary(results)
    common.save_json(args.out, dict(
        **common.environment('bench_calibration', device),
        weights='random initialisation (timing only; metrics meaningless)',
        args=vars(args), setups=results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
