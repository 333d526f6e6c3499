"""The demo tasks' studies: each trains the demo configs (configs/demo/) in two
variants x seeds with the same data, schedule and seed, and evaluates them
(one runner: ``study.py``; one JSON per run, resumable).

* ``usnet`` (paper Fig. 16): ``mutualnet``, the config as it is, against
  ``usnet``, the same cohort with every member at the full view
  (``MultiResolution`` cut to its first view, ``multi_resolution=False``). Both
  are calibrated and evaluated over the same grid (4 widths x MutualNet's views;
  US-Net at the lower resolutions is the paper's US-Net+); per task and seed,
  both frontiers on one plot and ``summary.json`` (per MutualNet frontier point,
  US-Net's best within its FLOPs). Results: docs/demo_usnet/.
* ``batch_views``: views in the pipeline (``pipeline``: ``MultiResolution``)
  against views made from the batch (``batch``: the hook's ``batch_views``);
  three subnets calibrated and evaluated. Results: benchmarks/results/batch_views_demo/.
* ``recipe``: the demo's optimizer (``adamw``) against the provided configs'
  (``sgd``: SGD, momentum 0.9, weight decay 1e-4; lr 0.02 for detection as
  provided, 0.1 for video); validation every 100 iterations.
  Results: benchmarks/results/demo_recipe/.

    .venv/bin/python studies/demo_studies.py usnet --tasks detection video --seeds 0 1
    .venv/bin/python studies/demo_studies.py batch_views --seeds 0 1 --jobs 2
    .venv/bin/python studies/demo_studies.py recipe --seeds 0 1
    .venv/bin/python studies/demo_studies.py usnet --list     # done / running / pending
"""
import argparse
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass

from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT, osp.join(ROOT, 'tools')) if p not in sys.path]
from benchmarks import common  # noqa: E402
from studies import study  # noqa: E402

TASKS = dict(
    detection=dict(config='configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py',
                   provided='configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py',
                   sgd_lr=None, metric='coco/bbox_mAP', flops_scope='features'),
    video=dict(config='configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py',
               provided='configs/kinetics/'
                        'slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py',
               sgd_lr=0.1, metric='acc/top1', flops_scope='model'))
WIDTHS = (1.0, 0.75, 0.5, 0.25)


def demo_cfg(task: str):
    from mutual_mm.utils import load_config
    return load_config(osp.join(ROOT, TASKS[task]['config']))


def as_is(cfg, task):
    return cfg


def usnet(cfg, task):
    """One (the full) view for every member, through the same resize code."""
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'MultiResolution':
            t['scales'] = t['scales'][:1]
            if t.get('frames'):
                t['frames'] = t['frames'][:1]
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'MutualLearningHook')
    hook.pop('batch_views', None)
    hook['multi_resolution'] = False
    return cfg


def batch_views(cfg, task):
    """The stock single-view pipeline; the hook makes the views from the batch."""
    pipeline = cfg.train_dataloader.dataset.pipeline
    multi = next(t for t in pipeline if t['type'] == 'MultiResolution')
    pipeline.remove(multi)
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'MutualLearningHook')
    if task == 'detection':
        pipeline += [dict(type='Resize', scale=multi['scales'][0], keep_ratio=True),
                     dict(type='PackDetInputs')]
        hook['batch_views'] = dict(scales=multi['scales'])
    else:  # the crop already has the first view's size
        pipeline += [dict(type='FormatShape', input_format='NCTHW'),
                     dict(type='PackActionInputs')]
        hook['batch_views'] = dict(scales=multi['scales'], frames=multi['frames'])
    return cfg


def sgd(cfg, task):
    """The provided config's optimizer (lr: ``sgd_lr`` where given)."""
    from mutual_mm.utils import load_config
    optimizer = load_config(osp.join(ROOT, TASKS[task]['provided'])).optim_wrapper.optimizer
    if TASKS[task]['sgd_lr'] is not None:
        optimizer.lr = TASKS[task]['sgd_lr']
    cfg.optim_wrapper.optimizer = optimizer
    return cfg


def trained_grid(task: str) -> list:
    from mutual_mm.deploy import trained_subnets
    return trained_subnets(demo_cfg(task), widths=list(WIDTHS))


def three_subnets(task: str) -> list:
    from mutual_mm.deploy import Subnet
    return [Subnet(*s) for s in dict(
        video=((1.0, 48, 8), (0.5, 38, 5), (0.25, 30, 3)),
        detection=((1.0, (128, 96)), (0.5, (128, 58)), (0.25, (128, 38))))[task]]


#: each study: the record's name for its variants, the variants (edits of the
#: demo config), the subnets evaluated after training, the validation interval
#: (0: at the end only), where the results go
STUDIES = dict(
    usnet=dict(axis='method', variants=dict(mutualnet=as_is, usnet=usnet),
               subnets=trained_grid, val_interval=0, results='docs/demo_usnet'),
    batch_views=dict(axis='mode', variants=dict(pipeline=as_is, batch=batch_views),
                     subnets=three_subnets, val_interval=0,
                     results='benchmarks/results/batch_views_demo'),
    recipe=dict(axis='recipe', variants=dict(adamw=as_is, sgd=sgd), subnets=None,
                val_interval=100, results='benchmarks/results/demo_recipe'))


@dataclass(frozen=True)
class DemoRun:
    task: str
    variant: str
    seed: int = 0
    iters: int = 0  # 0: the config's

    @property
    def suffix(self) -> str:  # seed 0 and the config's schedule: none
        return (f'_s{self.seed}' if self.seed else '') + (f'_i{self.iters}' if self.iters else '')

    @property
    def name(self) -> str:
        return f'{self.task}_{self.variant}{self.suffix}'


class DemoStudy(study.Study):
    def __init__(self, name: str, tasks=tuple(TASKS), seeds=(0,), iters: int = 0,
                 calib_batches: int = 8, results_dir=None, workspace: str = ROOT,
                 cfg_options=None):
        self.name, self.spec = name, STUDIES[name]
        self.tasks, self.seeds, self.iters, self.calib_batches = tasks, seeds, iters, calib_batches
        self.cfg_options = cfg_options or {}
        self.results_dir = results_dir or osp.join(ROOT, self.spec['results'])
        self.work_dir = osp.join(workspace, 'work_dirs', 'demo_studies', name)

    def runs(self):
        return [DemoRun(t, v, s, self.iters) for t in self.tasks for s in self.seeds
                for v in self.spec['variants']]

    def config(self, run: DemoRun):
        cfg = demo_cfg(run.task)
        cfg.merge_from_dict(self.cfg_options)
        cfg = self.spec['variants'][run.variant](cfg, run.task)
        iters = run.iters or cfg.train_cfg.max_iters
        cfg.train_cfg.max_iters = cfg.param_scheduler[-1]['end'] = iters  # the cosine ends there
        cfg.param_scheduler = [p for p in cfg.param_scheduler if p.get('begin', 0) < iters]
        cfg.train_cfg.val_interval = self.spec['val_interval'] or iters
        cfg.default_hooks.checkpoint.update(interval=min(100, iters), max_keep_ckpts=1,
                                            save_last=True)
        cfg.randomness = dict(seed=run.seed)
        cfg.log_level = 'WARNING'
        return cfg

    def describe(self, run: DemoRun) -> dict:
        return {'study': self.name, 'task': run.task, self.spec['axis']: run.variant,
                'seed': run.seed}

    def evaluate(self, run: DemoRun, result: dict, log) -> None:
        if self.spec['subnets'] is None:
            return
        import time

        from mutual_mm.deploy import build_lookup_table
        start = time.perf_counter()
        rows, result['metric'] = build_lookup_table(
            study.run_config(self, run), result['checkpoint'], self.spec['subnets'](run.task),
            TASKS[run.task]['metric'], num_batches=self.calib_batches,
            flops_scope=TASKS[run.task]['flops_scope'], allow_untrained=True)
        result.update(eval_seconds=round(time.perf_counter() - start),
                      rows=[r.as_dict() for r in rows])


# ------------------------------------------------------------ usnet report
def frontier(rows):
    """The package's Pareto frontier of table rows (as dicts), cheapest first."""
    from mutual_mm.deploy import TableRow, pareto_frontier
    keep = {r.subnet.key for r in pareto_frontier([TableRow.from_dict(d) for d in rows])}
    return sorted((r for r in rows if r['key'] in keep), key=lambda r: r['flops'])


def compare(mutual: list, us: list) -> dict:
    """Per MutualNet frontier point: US-Net's best within the same FLOPs."""
    points = []
    for r in frontier(mutual):
        within = [x for x in us if x['flops'] <= r['flops'] * (1 + 1e-9)]
        best = max(within, key=lambda x: x['metric']) if within else None
        points.append(dict(config=r['key'], mflops=r['flops'] / 1e6, mutualnet=r['metric'],
                           usnet=best and best['metric'], usnet_config=best and best['key']))
    compared = [p for p in points if p['usnet'] is not None]
    return dict(points=points, compared=len(compared),
                mutualnet_above=sum(p['mutualnet'] > p['usnet'] for p in compared))


def plot(title: str, results: dict, xlabel: str, path: str) -> str:
    fig, ax = common.log_axes()
    for (method, res), color, label in zip(results.items(), ('tab:red', 'tab:blue'),
                                           ('MutualNet', 'US-Net')):
        rows, f = res['rows'], frontier(res['rows'])
        ax.scatter([r['flops'] / 1e6 for r in rows], [r['metric'] for r in rows], s=14,
                   color=color, alpha=0.35)
        ax.plot([r['flops'] / 1e6 for r in f], [r['metric'] for r in f], '-o', color=color,
                ms=4, lw=2, label=f'{label} (frontier)')
        for r in f:
            ax.annotate(r['key'], (r['flops'] / 1e6, r['metric']), textcoords='offset points',
                        xytext=(3, 4 if method == 'mutualnet' else -10), fontsize=6, color=color)
    ax.set(xlabel=xlabel, ylabel=next(iter(results.values()))['metric'])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc='lower right')
    return common.save_figure(fig, path)


def usnet_report(s: DemoStudy) -> dict:
    """Per task and seed with both runs done: the comparison and the plot,
    merged into ``summary.json`` (entries of other invocations are kept)."""
    summary = {}
    for task in s.tasks:
        for seed in s.seeds:
            res = {m: study.load_result(s, DemoRun(task, m, seed, s.iters))
                   for m in STUDIES['usnet']['variants']}
            if None in res.values():
                continue
            key = task + DemoRun(task, '', seed, s.iters).suffix
            iters = res['mutualnet']['iterations']
            scope = 'backbone + neck' if TASKS[task]['flops_scope'] == 'features' else 'model'
            summary[key] = dict(
                compare(res['mutualnet']['rows'], res['usnet']['rows']), seed=seed,
                iterations=iters, plot=plot(
                    f'demo {task}: MutualNet vs US-Net, same config, {iters} iterations, seed '
                    f'{seed}', res, f'MFLOPs ({scope}, log scale)',
                    osp.join(s.results_dir, f'{key}.png')),
                full={m: max(r['rows'], key=lambda x: x['flops'])['metric']
                      for m, r in res.items()},
                train_seconds={m: r['train_seconds'] for m, r in res.items()})
            for p in summary[key]['points']:
                print(f'{key:<12} {p["config"]:<18} {p["mflops"]:>8.1f} MFLOPs  MutualNet '
                      f'{p["mutualnet"]:.4f}  US-Net best within {p["usnet"]} '
                      f'({p["usnet_config"]})')
    path = osp.join(s.results_dir, 'summary.json')
    merged = {}
    if osp.exists(path):
        with open(path) as f:
            merged = json.load(f)
    common.save_json(path, dict(merged, **summary))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('study', choices=list(STUDIES))
    p.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--iters', type=int, default=0, help="0: the demo config's schedule")
    p.add_argument('--calib-batches', type=int, default=8)
    p.add_argument('--workspace', default=ROOT, help='data/ and work_dirs/ go here')
    p.add_argument('--results-dir', default=None, help='default: see above')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='overrides of both demo configs, before the variants\' edits, e.g. '
                        'custom_hooks.0.num_random=2 (give them a --results-dir of their own)')
    p.add_argument('--quick', action='store_true', help='tiny data, 2 iterations (tests)')
    study.add_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.iters, args.calib_batches = args.iters or 2, 1
    s = DemoStudy(args.study, args.tasks, args.seeds, args.iters, args.calib_batches,
                  args.results_dir and osp.abspath(args.results_dir), osp.abspath(args.workspace),
                  args.cfg_options)
    import mutual_mm  # noqa: F401
    from make_demo_data import make_demo_data
    os.makedirs(args.workspace, exist_ok=True)
    os.chdir(args.workspace)  # the demo configs' data paths are relative
    if not args.list:
        make_demo_data(osp.join('data', 'mutual_demo'),
                       **(dict(images=(8, 4), videos=(8, 4)) if args.quick else {}))
    child = [osp.abspath(__file__), *(argv if argv is not None else sys.argv[1:])]
    study.run_study(s, args, child)
    if args.list or args.only:
        return {}
    if args.study == 'usnet':
        return usnet_report(s)
    for run in s.runs():
        r = study.load_result(s, run) or {}
        print(f'{run.name:<28} ' + ', '.join(
            [f'val@{v["iteration"]} {v[TASKS[run.task]["metric"]]:.3f}'
             for v in r.get('validations', [])]
            + [f'{x["key"]} {x["metric"]:.3f}' for x in r.get('rows', [])]))
    return {}


if __name__ == '__main__':
    main()
