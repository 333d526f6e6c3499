"""MutualNet vs US-Net on the demo's detection and video tasks (paper Fig. 16 question).

Both methods train the demo config (configs/demo/) with the same data, seed,
schedule and cohort (full, smallest and 2 random widths); they differ only in
the inputs of the sub-networks:

* **MutualNet**: the demo config as it is (each sub-network on a random view of
  ``MultiResolution``);
* **US-Net**: the same config with ``MultiResolution`` cut to its first (full)
  view and ``MutualLearningHook(multi_resolution=False)``: every member at the
  full size, through the very same resize code.

Each is then BN-calibrated and evaluated over the same grid (4 widths x the
MutualNet config's resolutions (x frames): US-Net at the lower resolutions is
the paper's "US-Net+"), and both metric-vs-FLOPs curves with their Pareto
frontiers go on one plot per task. Each (task, method) saves its table as it
finishes; a later run resumes training from the last checkpoint and skips what
is done::

    .venv/bin/python benchmarks/compare_demo_usnet.py            # both tasks
    .venv/bin/python benchmarks/compare_demo_usnet.py --tasks video

Outputs: docs/demo_usnet/{task}_{method}.json, {task}.png, summary.json.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for path in (ROOT, osp.join(ROOT, 'tools')):
    if path not in sys.path:
        sys.path.insert(0, path)

TASKS = dict(
    detection=dict(config='configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py',
                   metric='coco/bbox_mAP', flops_scope='features'),
    video=dict(config='configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py',
               metric='acc/top1', flops_scope='model'))
METHODS = ('mutualnet', 'usnet')
WIDTHS = (1.0, 0.75, 0.5, 0.25)


def usnet_cfg(cfg):
    """The US-Net twin of a MutualNet config: one (the full) view, widths only
    (views made from the batch: none made; MultiResolution: its first view)."""
    cfg = copy.deepcopy(cfg)
    pipeline = cfg.train_dataloader.dataset.pipeline
    for t in pipeline:
        if t['type'] == 'MultiResolution':
            t['scales'] = t['scales'][:1]
            if t.get('frames'):
                t['frames'] = t['frames'][:1]
    for hook in cfg.custom_hooks:
        if hook['type'] == 'MutualLearningHook':
            hook.pop('batch_views', None)
            hook['multi_resolution'] = False
    return cfg


def task_cfg(task: str, method: str, work_dir: str, iters, seed: int = 0):
    from mutual_mm.utils import load_config
    cfg = load_config(osp.join(ROOT, TASKS[task]['config']))
    if iters:
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
        cfg.default_hooks.checkpoint.interval = iters
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.default_hooks.checkpoint.interval = min(cfg.default_hooks.checkpoint.interval, 100)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    cfg.default_hooks.checkpoint.save_last = True
    cfg.randomness = dict(seed=seed)
    return usnet_cfg(cfg) if method == 'usnet' else cfg


def run_one(task: str, method: str, args) -> dict:
    """Train (resuming), calibrate and tabulate one (task, method); cached."""
    from mmengine.runner import Runner
    from mutual_mm.deploy import (build_lookup_table, calibrate_checkpoint,
                                  trained_subnets)
    suffix = f'_s{args.seed}' if args.seed else ''  # seed 0: the original names
    out = osp.join(args.out_dir, f'{task}_{method}{suffix}.json')
    if osp.exists(out):
        with open(out) as f:
            return json.load(f)
    work_dir = osp.abspath(osp.join(args.workspace, 'work_dirs', 'demo_usnet', task,
                                    method + suffix))
    cfg = task_cfg(task, method, work_dir, args.iters, args.seed)
    cfg.resume = osp.exists(osp.join(work_dir, 'last_checkpoint'))
    t0 = time.time()
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    iters = runner.iter
    del runner
    train_s = time.time() - t0
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    # the same grid for both: US-Net is evaluated at MutualNet's resolutions too
    reference = task_cfg(task, 'mutualnet', work_dir, args.iters, args.seed)
    configs = trained_subnets(reference, widths=list(WIDTHS))
    calibrated = osp.join(work_dir, 'calibrated.pth')
    t0 = time.time()
    # US-Net trained the full size only: its lower sizes are the paper's US-Net+
    untrained_ok = method == 'usnet'
    calibrate_checkpoint(cfg, checkpoint, calibrated, configs, args.calib_batches,
                         allow_untrained=untrained_ok)
    rows, metric = build_lookup_table(cfg, calibrated, configs, TASKS[task]['metric'],
                                      flops_scope=TASKS[task]['flops_scope'],
                                      allow_untrained=untrained_ok)
    result = dict(task=task, method=method, seed=args.seed, iterations=iters,
                  train_seconds=round(train_s),
                  eval_seconds=round(time.time() - t0), metric=metric,
                  rows=[r.as_dict() for r in rows])
    os.makedirs(args.out_dir, exist_ok=True)
    with open(out, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def frontier(rows):
    """The package's Pareto frontier of table rows (as dicts), cheapest first."""
    from mutual_mm.deploy import TableRow, pareto_frontier
    keep = {r.subnet.key for r in pareto_frontier([TableRow.from_dict(d) for d in rows])}
    return sorted((r for r in rows if r['key'] in keep), key=lambda r: r['flops'])


def compare(results: dict) -> dict:
    """Per MutualNet frontier point: US-Net's best within the same FLOPs."""
    m, u = results['mutualnet']['rows'], results['usnet']['rows']
    points = []
    for r in frontier(m):
        within = [x for x in u if x['flops'] <= r['flops'] * (1 + 1e-9)]
        best = max(within, key=lambda x: x['metric']) if within else None
        points.append(dict(config=_key(r), mflops=r['flops'] / 1e6, mutualnet=r['metric'],
                           usnet=best['metric'] if best else None,
                           usnet_config=_key(best) if best else None))
    return dict(points=points, mutualnet_above=sum(
        1 for p in points if p['usnet'] is not None and p['mutualnet'] > p['usnet']),
        compared=sum(1 for p in points if p['usnet'] is not None))


def _key(row):
    scale = row['scale']
    s = 'x'.join(map(str, scale)) if isinstance(scale, (list, tuple)) else str(scale)
    return f'{row["width"]:g}x-{s}' + (f'-f{row["frames"]}' if row.get('frames') else '')


def plot(task: str, results: dict, path: str, seed: int = 0) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=130)
    styles = dict(mutualnet=('tab:red', 'MutualNet'), usnet=('tab:blue', 'US-Net'))
    for method, res in results.items():
        color, label = styles[method]
        rows = res['rows']
        ax.scatter([r['flops'] / 1e6 for r in rows], [r['metric'] for r in rows], s=14,
                   color=color, alpha=0.35)
        f = frontier(rows)
        ax.plot([r['flops'] / 1e6 for r in f], [r['metric'] for r in f], '-o', color=color,
                ms=4, lw=2, label=f'{label} (frontier)')
        for r in f:
            ax.annotate(_key(r), (r['flops'] / 1e6, r['metric']), textcoords='offset points',
                        xytext=(3, -10 if method == 'usnet' else 4), fontsize=6, color=color)
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:g}'))
    scope = 'backbone + neck' if TASKS[task]['flops_scope'] == 'features' else 'model'
    ax.set_xlabel(f'MFLOPs ({scope}, log scale)')
    metric = next(iter(results.values()))['metric']
    ax.set_ylabel(metric)
    iters = next(iter(results.values()))['iterations']
    ax.set_title(f'demo {task}: MutualNet vs US-Net, same config, {iters} iterations, '
                 f'seed {seed}', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    p.add_argument('--workspace', default=ROOT, help='data/ and work_dirs/ go here')
    p.add_argument('--out-dir', default=osp.join(ROOT, 'docs', 'demo_usnet'))
    p.add_argument('--iters', type=int, default=0, help='override the demo schedule')
    p.add_argument('--calib-batches', type=int, default=8)
    p.add_argument('--seed', type=int, default=0,
                   help='training seed (results of seed s > 0 are suffixed _s{s})')
    p.add_argument('--quick', action='store_true', help='tiny data, 2 iterations (tests)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    args = p.parse_args(argv)
    import torch
    import mutual_mm  # noqa: F401
    from make_demo_data import make_demo_data
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.iters = args.iters or 2
        args.calib_batches = 1
    os.makedirs(args.workspace, exist_ok=True)
    os.chdir(args.workspace)  # the demo configs' data paths are relative
    make_demo_data(osp.join('data', 'mutual_demo'),
                   **(dict(images=(8, 4), videos=(8, 4)) if args.quick else {}))
    summary = {}
    suffix = f'_s{args.seed}' if args.seed else ''
    for task in args.tasks:
        results = {m: run_one(task, m, args) for m in METHODS}
        summary[task + suffix] = dict(compare(results), plot=plot(
            task, results, osp.join(args.out_dir, f'{task}{suffix}.png'), args.seed),
            seed=args.seed, iterations=results['mutualnet']['iterations'],
            full={m: max(r['rows'], key=lambda x: x['flops'])['metric']
                  for m, r in results.items()},
            train_seconds={m: r['train_seconds'] for m, r in results.items()})
        for pt in summary[task + suffix]['points']:
            print(f'{task:<10} {pt["config"]:<16} {pt["mflops"]:>9.1f} MFLOPs  MutualNet '
                  f'{pt["mutualnet"]:.4f}  US-Net best within {pt["usnet"]}'
                  f' ({pt["usnet_config"]})')
    # entries of other invocations (e.g. one process per task or seed) are kept
    summary_path = osp.join(args.out_dir, 'summary.json')
    merged = {}
    if osp.exists(summary_path):
        with open(summary_path) as f:
            merged = json.load(f)
    merged.update(summary)
    with open(summary_path, 'w') as f:
        json.dump(merged, f, indent=1)
    return summary


if __name__ == '__main__':
    main()
