"""The study's tables, plots and summary, from the run result files alone.

Every number in docs/replication.md comes from ``summary.json``, which this
module derives from ``runs/*.json``; nothing here trains or evaluates.

Comparisons at an I-Net point p (FLOPs F_p) use two readings of a shared model:
``same``, its accuracy at exactly p's subnet, and ``budget``, its best
subnet costing at most F_p (the paper's accuracy-vs-FLOPs curves: a
user of a shared model picks the best subnet within the budget).
"""
import glob
import json
import os.path as osp
import statistics
from typing import Dict, List, Optional

from benchmarks.common import log_axes, save_figure, save_json
from mutual_mm.fileio import write_text

from .plan import (ABLATION_BUDGET, BUDGETS, INET_POINTS, SEED_BUDGET, STEPS_PER_EPOCH,
                   RunSpec)

LABELS = dict(mutualnet='MutualNet', usnet='US-Net', inet='I-Net', plain='plain')


def load_runs(results_dir: str) -> List[dict]:
    runs = []
    for path in sorted(glob.glob(osp.join(results_dir, '*.json'))):
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def _find(runs, *spec, **kw) -> Optional[dict]:
    """The run of ``RunSpec(*spec, **kw)`` (by its name), if there is one."""
    name = RunSpec(*spec, **kw).name
    return next((r for r in runs if r['spec']['name'] == name), None)


def at(run: dict, width: float, res: int, key: str = 'top1') -> Optional[float]:
    """``key`` of the run's row at (width, resolution)."""
    return next((r[key] for r in run['rows'] if (r['width'], r['resolution']) == (width, res)),
                None)


def mflops(run: dict, width: float, res: int) -> Optional[float]:
    return at(run, width, res, 'mflops')


def best_within(run: dict, max_mflops: float) -> Optional[dict]:
    """The most accurate subnet costing at most ``max_mflops`` (1e-9
    slack for float equality)."""
    rows = [r for r in run['rows'] if r['mflops'] <= max_mflops * (1 + 1e-9)]
    return max(rows, key=lambda r: r['top1']) if rows else None


def frontier(rows: List[dict]) -> List[dict]:
    """The package's Pareto frontier (cheapest first, each more accurate than
    every cheaper row) of the study's rows."""
    from mutual_mm.deploy import Subnet, TableRow, pareto_frontier
    table = [TableRow(Subnet(r['width'], r['resolution']), r['mflops'], 0.0, r['top1'])
             for r in rows]
    keep = {(t.subnet.width, t.subnet.scale) for t in pareto_frontier(table)}
    return sorted((r for r in rows if (r['width'], r['resolution']) in keep),
                  key=lambda r: r['mflops'])


def point_comparison(mutual: dict, usnet: dict, inets: Dict[tuple, dict]) -> List[dict]:
    out = []
    for point in INET_POINTS:
        inet = inets.get(point)
        budget = mflops(mutual, *point)
        bm, bu = best_within(mutual, budget), best_within(usnet, budget)
        out.append(dict(
            point=f'{point[0]:g}x-{point[1]}', mflops=budget,
            inet=inet['rows'][0]['top1'] if inet else None,
            mutualnet_same=at(mutual, *point), usnet_same=at(usnet, *point),
            mutualnet_budget=bm['top1'], mutualnet_budget_config=_cfg(bm),
            usnet_budget=bu['top1'], usnet_budget_config=_cfg(bu),
            gap_mutual_usnet=bm['top1'] - bu['top1'],
            gap_mutual_inet=(bm['top1'] - inet['rows'][0]['top1']) if inet else None))
    return out


def _cfg(row: dict) -> str:
    return f'{row["width"]:g}x-{row["resolution"]}'


def trend(runs: List[dict]) -> List[dict]:
    out = []
    for iters in BUDGETS:
        mutual, usnet = _find(runs, 'mutualnet', iters), _find(runs, 'usnet', iters)
        inets = {p: _find(runs, 'inet', iters, point=p) for p in INET_POINTS}
        if mutual is None or usnet is None:
            continue
        out.append(dict(iters=iters, epochs=round(iters / STEPS_PER_EPOCH, 2),
                        complete=all(inets.values()),
                        points=point_comparison(mutual, usnet, inets)))
    return out


def _spread(values: List[float]) -> dict:
    return dict(values=values, mean=statistics.mean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values))


def seeds(runs: List[dict]) -> dict:
    per_method = {}
    for method in ('mutualnet', 'usnet'):
        found = [r for r in (_find(runs, method, SEED_BUDGET, seed=s) for s in (0, 1, 2)) if r]
        if len(found) < 2:  # a spread needs two seeds
            continue
        ref = _find(runs, 'mutualnet', SEED_BUDGET) or found[0]
        per_point = {}
        for point in INET_POINTS:
            budget = mflops(ref, *point)
            per_point[f'{point[0]:g}x-{point[1]}'] = dict(
                same=_spread([at(r, *point) for r in found]),
                budget=_spread([best_within(r, budget)['top1'] for r in found]))
        per_method[method] = dict(seeds=[r['spec']['seed'] for r in found],
                                  points=per_point)
    gaps = {}
    if 'mutualnet' in per_method and 'usnet' in per_method:
        for point, m in per_method['mutualnet']['points'].items():
            u = per_method['usnet']['points'][point]
            gaps[point] = dict(
                mean_gap_budget=m['budget']['mean'] - u['budget']['mean'],
                pooled_std=((m['budget']['std'] ** 2 + u['budget']['std'] ** 2) / 2) ** 0.5)
    return dict(iters=SEED_BUDGET, methods=per_method, gaps=gaps)


def ablations(runs: List[dict]) -> dict:
    it = ABLATION_BUDGET
    variants = [
        ('I-Net 1x-32 (full network alone)', _find(runs, 'inet', it, point=(1.0, 32))),
        ('full + smallest (num_random=0)', _find(runs, 'mutualnet', it, num_random=0)),
        ('full + smallest + 2 random (MutualNet)', _find(runs, 'mutualnet', it)),
        ('MutualNet, sub-networks on ground truth', _find(runs, 'mutualnet', it,
                                                          distill='gt')),
        ('MutualNet, lr 0.05 (0.1 per 128), no warm-up',
         _find(runs, 'mutualnet', it, lr=0.05, warmup=False)),
        ('I-Net 1x-32, lr 0.05, no warm-up',
         _find(runs, 'inet', it, point=(1.0, 32), lr=0.05, warmup=False)),
        ('MutualNet, widths [0.9, 1.0]', _find(runs, 'mutualnet', it,
                                               width_range=[0.9, 1.0])),
        ('US-Net', _find(runs, 'usnet', it)),
    ]
    table = []
    for label, run in variants:
        if run is None:
            continue
        row = dict(variant=label, run=run['spec']['name'],
                   full=at(run, 1.0, 32), seconds_per_iter=run['seconds_per_iter'],
                   full_train_loss=_full_loss(run))
        for point in INET_POINTS[1:]:
            row[f'{point[0]:g}x-{point[1]}'] = at(run, *point)
        table.append(row)
    plain = _find(runs, 'plain', 600, point=(1.0, 32))
    hooked = _find(runs, 'inet', 600, point=(1.0, 32))
    plumbing = None
    if plain and hooked:
        plumbing = dict(plain=plain['rows'][0]['top1'], hooked=hooked['rows'][0]['top1'],
                        plain_loss=_full_loss(plain), hooked_loss=_full_loss(hooked))
    calib = {}
    mutual = _find(runs, 'mutualnet', it)
    if mutual and mutual.get('calibration_sizes'):
        for size, rows in sorted(mutual['calibration_sizes'].items(), key=lambda kv: int(kv[0])):
            calib[size] = {f'{r["width"]:g}x-{r["resolution"]}': r['top1'] for r in rows}
    return dict(iters=it, table=table, plumbing=plumbing, calibration=calib)


def _full_loss(run: dict) -> Optional[float]:
    losses = run.get('final_losses', {})
    for key in ('full.loss_cls', 'loss_cls', 'loss'):
        if key in losses:
            return losses[key]
    return None


def summarize(runs: List[dict]) -> dict:
    t = trend(runs)
    longest = max((x['iters'] for x in t if x['complete']), default=None)
    return dict(trend=t, longest_complete_budget=longest, seeds=seeds(runs),
                ablations=ablations(runs),
                runs={r['spec']['name']: dict(
                    seconds_per_iter=r['seconds_per_iter'], train_seconds=r['train_seconds'],
                    eval_seconds=r['eval_seconds'], finished=r['finished'],
                    device=r['versions']['device'],
                    cpu=r['versions'].get('cpu') or r['versions'].get('device_name'))
                    for r in runs})


# ---------------------------------------------------------------- plots
def plot_accuracy_vs_flops(runs: List[dict], iters: int, path: str) -> Optional[str]:
    mutual, usnet = _find(runs, 'mutualnet', iters), _find(runs, 'usnet', iters)
    if mutual is None or usnet is None:
        return None
    fig, ax = log_axes(figsize=(7.0, 4.6))
    ax.scatter([r['mflops'] for r in mutual['rows']], [r['top1'] for r in mutual['rows']],
               s=14, color='tab:red', alpha=0.35)
    f = frontier(mutual['rows'])
    ax.plot([r['mflops'] for r in f], [r['top1'] for r in f], '-o', color='tab:red', ms=4,
            lw=2, label='MutualNet (frontier over width x resolution)')
    for r in f:
        ax.annotate(_cfg(r), (r['mflops'], r['top1']), textcoords='offset points',
                    xytext=(-8, -12), fontsize=7, color='tab:red')
    us32 = sorted((r for r in usnet['rows'] if r['resolution'] == 32),
                  key=lambda r: r['mflops'])
    ax.plot([r['mflops'] for r in us32], [r['top1'] for r in us32], '-s', color='tab:blue',
            ms=4, lw=2, label='US-Net (32 px, widths)')
    fu = frontier(usnet['rows'])
    ax.plot([r['mflops'] for r in fu], [r['top1'] for r in fu], '--', color='tab:blue',
            lw=1.2, alpha=0.7, label='US-Net+ (frontier, any resolution at test)')
    inets = [r for r in (_find(runs, 'inet', iters, point=p) for p in INET_POINTS) if r]
    if inets:
        ax.scatter([r['rows'][0]['mflops'] for r in inets], [r['rows'][0]['top1'] for r in inets],
                   marker='^', s=46, color='tab:green', zorder=3, label='I-Net (independent)')
        for r in inets:
            ax.annotate(_cfg(r['rows'][0]), (r['rows'][0]['mflops'], r['rows'][0]['top1']),
                        textcoords='offset points', xytext=(4, 4), fontsize=7,
                        color='tab:green')
    lo = min(min(r['top1'] for r in f), min(r['top1'] for r in us32)) - 3
    ax.set(ylim=(max(lo, 0), None), xlabel='MFLOPs (one image, log scale)',
           ylabel='top-1 accuracy (%), Fashion-MNIST test')
    ax.set_title(f'Fashion-MNIST, SlimMobileNetV1 x0.5, {iters} steps of batch 64 '
                 f'({iters / STEPS_PER_EPOCH:.2g} epochs) each, seed 0', fontsize=9)
    ax.legend(fontsize=7, loc='lower right')
    return save_figure(fig, path)


def plot_gaps(summary: dict, path: str) -> Optional[str]:
    t = summary['trend']
    if not t:
        return None
    fig, axes = log_axes(2, figsize=(9.0, 3.6), sharey=True)
    limit = 8.0  # points; larger gaps (US-Net off its trained resolution) are marked
    colors = dict(zip([f'{w:g}x-{r}' for w, r in INET_POINTS],
                      ['tab:red', 'tab:purple', 'tab:orange']))
    for ax, key, title in ((axes[0], 'gap_mutual_usnet', 'MutualNet - US-Net'),
                           (axes[1], 'gap_mutual_inet', 'MutualNet - I-Net')):
        for point, color in colors.items():
            xs, ys = [], []
            for budget in t:
                p = next(q for q in budget['points'] if q['point'] == point)
                if p[key] is not None:
                    xs.append(budget['epochs'])
                    ys.append(p[key])
            if xs:
                clipped = [max(-limit, min(limit, y)) for y in ys]
                ax.plot(xs, clipped, '-o', color=color, ms=4, label=f'at {point} FLOPs')
                for x, y in zip(xs, ys):
                    if abs(y) > limit:
                        ax.annotate(f'{y:+.0f} (off scale)', (x, max(-limit, min(limit, y))),
                                    textcoords='offset points', xytext=(4, -10),
                                    fontsize=7, color=color)
        if key == 'gap_mutual_usnet' and summary['seeds']['gaps']:
            for point, g in summary['seeds']['gaps'].items():
                ax.errorbar([SEED_BUDGET / STEPS_PER_EPOCH], [g['mean_gap_budget']],
                            yerr=[g['pooled_std']], fmt='none', ecolor=colors[point],
                            capsize=3, alpha=0.6)
        ax.axhline(0, color='k', lw=0.8)
        ax.set(ylim=(-limit - 0.5, limit + 0.5), xlim=(0.4, 16),
               xlabel='training budget (epochs of batch 64, log scale)')
        ax.set_title(f'{title} (best subnet within the FLOPs)', fontsize=9)
    axes[0].set_ylabel('top-1 difference (points)')
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def write_report(results_dir: str, out_dir: str) -> dict:
    runs = load_runs(results_dir)
    summary = summarize(runs)
    save_json(osp.join(out_dir, 'summary.json'), summary, quiet=True)
    write_text(osp.join(out_dir, 'results.md'), format_markdown(summary))
    budgets = [x['iters'] for x in summary['trend']]
    if budgets:
        plot_accuracy_vs_flops(runs, summary['longest_complete_budget'] or max(budgets),
                               osp.join(out_dir, 'accuracy_vs_flops.png'))
        plot_gaps(summary, osp.join(out_dir, 'gap_vs_budget.png'))
    return summary


def _num(v, fmt='.2f') -> str:
    return '–' if v is None else format(v, fmt)


def _signed(v) -> str:
    return '–' if v is None else f'{v:+.2f}'


def format_markdown(summary: dict) -> str:
    """Every table of docs/replication/results.md (generated: do not edit)."""
    out = ['# Fashion-MNIST study: every measured number', '',
           'Generated by `studies/replicate_fashion_mnist.py --report` from '
           '`runs/*.json` (do not edit). Top-1 % on the 10,000 test images; MFLOPs of '
           'one image. "same": the shared model at exactly the I-Net\'s subnet; '
           '"best ≤": its best subnet costing at most that many FLOPs.', '']
    out += ['## Budget trend (seed 0)', '']
    for budget in summary['trend']:
        out.append(f'**{budget["iters"]} steps of batch 64 ({budget["epochs"]:g} epochs)**'
                   + ('' if budget['complete'] else ' (I-Nets not all done yet)'))
        out.append('')
        out.append('| I-Net point | MFLOPs | I-Net | MutualNet same | MutualNet best ≤ | '
                   'US-Net same | US-Net best ≤ | MutualNet − US-Net | MutualNet − I-Net |')
        out.append('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
        for p in budget['points']:
            out.append(
                f'| {p["point"]} | {p["mflops"]:.2f} | {_num(p["inet"])} | '
                f'{_num(p["mutualnet_same"])} | {_num(p["mutualnet_budget"])} '
                f'({p["mutualnet_budget_config"]}) | {_num(p["usnet_same"])} | '
                f'{_num(p["usnet_budget"])} ({p["usnet_budget_config"]}) | '
                f'{_signed(p["gap_mutual_usnet"])} | {_signed(p["gap_mutual_inet"])} |')
        out.append('')
    s = summary['seeds']
    if s['methods']:
        out += [f'## Seeds ({s["iters"]} steps)', '',
                '| method | seeds | point | same: mean ± std (min–max) | '
                'best ≤: mean ± std (min–max) |', '| --- | --- | --- | --- | --- |']
        for method, m in s['methods'].items():
            for point, v in m['points'].items():
                cells = [f'{v[k]["mean"]:.2f} ± {v[k]["std"]:.2f} ({v[k]["min"]:.2f}–'
                         f'{v[k]["max"]:.2f})' for k in ('same', 'budget')]
                out.append(f'| {LABELS[method]} | {", ".join(map(str, m["seeds"]))} | '
                           f'{point} | {cells[0]} | {cells[1]} |')
        if s['gaps']:
            out += ['', '| point | MutualNet − US-Net (best ≤), mean over seeds | '
                    'pooled std of one run |', '| --- | --- | --- |']
            for point, g in s['gaps'].items():
                out.append(f'| {point} | {g["mean_gap_budget"]:+.2f} | {g["pooled_std"]:.2f} |')
        out.append('')
    a = summary['ablations']
    if a['table']:
        points = [f'{w:g}x-{r}' for w, r in INET_POINTS[1:]]
        out += [f'## Ablations ({a["iters"]} steps, seed 0)', '',
                '| variant | 1x-32 | ' + ' | '.join(points) +
                ' | full network\'s train loss (last 200) | s/step |',
                '| --- | --- | ' + ' | '.join('---' for _ in points) + ' | --- | --- |']
        for row in a['table']:
            out.append(f'| {row["variant"]} | {_num(row["full"])} | ' +
                       ' | '.join(_num(row.get(p)) for p in points) +
                       f' | {_num(row["full_train_loss"], ".4f")} | '
                       f'{_num(row["seconds_per_iter"], ".3f")} |')
        out.append('')
    if a['plumbing']:
        pl = a['plumbing']
        out += ['## Plumbing (600 steps)', '',
                '| run | 1x-32 top-1 | train loss (last 200) |', '| --- | --- | --- |',
                f'| no hook (stock train step) | {pl["plain"]:.2f} | '
                f'{_num(pl["plain_loss"], ".4f")} |',
                f'| hook, width (1, 1), no random member (= I-Net 1x-32) | '
                f'{pl["hooked"]:.2f} | {_num(pl["hooked_loss"], ".4f")} |', '']
    if a['calibration']:
        points = list(next(iter(a['calibration'].values())))
        out += [f'## Calibration set size (MutualNet, {a["iters"]} steps)', '',
                '| batches of 64 | ' + ' | '.join(points) + ' |',
                '| --- | ' + ' | '.join('---' for _ in points) + ' |']
        for size, v in a['calibration'].items():
            out.append(f'| {size} | ' + ' | '.join(_num(v[p]) for p in points) + ' |')
        out.append('')
    out += ['## Runs', '', '| run | s/step | train s | eval s | finished | CPU |',
            '| --- | --- | --- | --- | --- | --- |']
    for name, r in sorted(summary['runs'].items()):
        out.append(f'| {name} | {_num(r["seconds_per_iter"], ".3f")} | {r["train_seconds"]:.0f} | '
                   f'{r["eval_seconds"]:.0f} | {r["finished"]} | {r["cpu"] or r["device"]} |')
    return '\n'.join(out) + '\n'
