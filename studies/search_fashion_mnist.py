"""Does searching stage widths pay off for a MutualNet-trained model? (docs/search.md)

The Fashion-MNIST MobileNetV1 of the replication study (``studies/replication``),
trained at its first budget (600 steps) on the first 55,000 training images, two
seeds, once with uniform widths (the paper's) and once with per-stage sampling
(``MutualLearningHook(stage_widths=True)``); each checkpoint is then searched
(``tools/search_subnet.py``: stage widths x resolution, scored on the 5,000 held-out
training images) under three FLOPs and three ONNX Runtime latency budgets, and
everything is reported on the 10,000 test images. One command runs what is missing
(training resumes, each search resumes from its state file)::

    nohup .venv/bin/python studies/search_fashion_mnist.py --jobs 2 &
    .venv/bin/python studies/search_fashion_mnist.py --list
    .venv/bin/python studies/search_fashion_mnist.py --report

Data: as the replication study (``apt-get install dataset-fashion-mnist``).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from studies import study  # noqa: E402
from studies.replication import plan, runner  # noqa: E402

RESULTS_DIR = osp.join(ROOT, 'docs', 'search', 'runs')
WORK_DIR = osp.join(ROOT, 'work_dirs', 'search')
#: whole-model FLOPs of one image; the uniform subnets span 0.64-12.6 MFLOPs
FLOPS_BUDGETS = (1.5e6, 3e6, 6e6)
#: ONNX Runtime, 1 thread, ms of one image: the uniform subnets span 0.044-0.268 ms
#: in the per-stage latency table (docs/search.md)
LATENCY_BUDGETS = (0.07, 0.11, 0.17)
SEARCH = dict(held_out=60000 - plan.SEARCH_TRAIN_SAMPLES, search_step=0.25,
              runtime='onnxruntime', threads=1, num_batches=3)


class SearchStudy(runner.FashionMNIST):
    """The four trainings of :func:`plan.search_runs` (searched) and the pair of
    :func:`plan.search_budget_runs` (not searched), each evaluated over the
    uniform subnets on the test set like the replication study's runs."""

    def runs(self):
        return plan.search_runs() + plan.search_budget_runs()


def settings(args) -> runner.Settings:
    return runner.Settings(data_root=args.data_root, results_dir=args.results_dir,
                           work_dir=args.work_dir,
                           train_samples=plan.SEARCH_TRAIN_SAMPLES)


def search_run(trainings: SearchStudy, spec, log=study.log_line) -> dict:
    """Search the trained checkpoint of ``spec`` (resuming); the search's result
    and its table rows are kept in ``<results_dir>/<run>_search.json``."""
    import mutual_mm  # noqa: F401
    from mutual_mm.deploy.search import search_subnet
    result = study.load_result(trainings, spec)
    if result is None:
        raise RuntimeError(f'{spec.name} is not trained yet')
    out = osp.join(trainings.work_dir, spec.name, 'search')
    os.makedirs(out, exist_ok=True)
    cfg = study.run_config(trainings, spec)
    # the printed export command reads it in a new process (run from the repository root)
    cfg.custom_imports = dict(imports=['studies.replication.runner'],
                              allow_failed_imports=False)
    config_path = osp.join(trainings.work_dir, spec.name, 'config.py')
    cfg.dump(config_path)
    # the latency table depends on the architecture only: the first search's
    # serves the others (its identity is checked when it is read)
    first = osp.join(trainings.work_dir, plan.search_runs()[0].name, 'search',
                     'latency_table.json')
    mine = osp.join(out, 'latency_table.json')
    if not osp.exists(mine) and osp.exists(first):
        shutil.copy(first, mine)
    searched = search_subnet(
        cfg, result['checkpoint'], out, FLOPS_BUDGETS, LATENCY_BUDGETS,
        allow_untrained=not spec.stage_widths, config_path=config_path,
        log=lambda line: log(f'[{spec.name}] {line}'), **SEARCH)
    with open(osp.join(out, 'table.json')) as f:
        searched['table'] = json.load(f)['rows']
    with open(osp.join(out, 'search_state.json')) as f:
        searched['candidates'] = list(json.load(f)['entries'].values())
    searched['spec'] = spec.as_dict()
    from benchmarks import common
    common.save_json(osp.join(trainings.results_dir, f'{spec.name}_search.json'), searched,
                     quiet=True)
    return searched


# ------------------------------------------------------------------- report
KINDS = (('flops', 'MFLOPs', FLOPS_BUDGETS, 1e6), ('latency_ms', 'ms', LATENCY_BUDGETS, 1))


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fmt(value, digits=2):
    return '–' if value is None else f'{value:.{digits}f}'


def report(results_dir: str, out: str) -> dict:
    """``out`` (markdown) and ``summary.json`` next to it from every search
    result there is: per budget, the test-set top-1 of the uniform and the
    searched pick of each checkpoint kind (picked on the held-out split), per
    seed and their mean; what per-stage sampling costs the uniform subnets;
    what the search cost."""
    import glob
    from benchmarks import common
    searches, trainings = {}, {}
    for path in sorted(glob.glob(osp.join(results_dir, '*.json'))):
        with open(path) as f:
            data = json.load(f)
        name = osp.basename(path)[:-len('.json')]
        (searches if name.endswith('_search') else trainings)[name] = data
    rows, picks = [], {}
    for name, found in searches.items():
        spec = found['spec']
        kind = 'stages' if spec['stage_widths'] else 'uniform'
        tested = {r['key']: r for r in found['table']}
        for answer in found['budgets']:
            for pick in ('uniform', 'chosen'):
                record = answer[pick]
                test = tested.get(record['key']) if record else None
                picks.setdefault((answer['cost'], answer['budget'], kind, pick), {})[
                    spec['seed']] = dict(
                        key=record and record['key'], held_out=record and record['score'],
                        top1=test and test['metric'], flops=test and test['flops'],
                        latency_ms=test and test['latency_ms'])
    lines = ['# Stage-width search on Fashion-MNIST: the numbers', '',
             'Written by `python studies/search_fashion_mnist.py --report` from '
             f'`{osp.relpath(results_dir, ROOT)}/`. Test top-1 % on the 10,000 test images '
             'of the subnet picked on the 5,000 held-out training images; "uniform" / '
             '"searched": the best uniform / best evaluated subnet within the budget; '
             'checkpoints trained with uniform widths (U) or per-stage sampling (S).', '']
    seeds = sorted({s for v in picks.values() for s in v})
    for cost, unit, budgets, scale in KINDS:
        lines += [f'## {unit} budgets', '',
                  '| budget | U uniform | U searched | S uniform | S searched | '
                  'U searched − U uniform | S searched − U uniform |',
                  '| --- | --- | --- | --- | --- | --- | --- |']
        for budget in budgets:
            cells, means = [], {}
            for kind in ('uniform', 'stages'):
                for pick in ('uniform', 'chosen'):
                    per_seed = picks.get((cost, budget, kind, pick), {})
                    top1 = [per_seed.get(s, {}).get('top1') for s in seeds]
                    means[kind, pick] = _mean(top1)
                    cells.append(f'{_fmt(means[kind, pick])} ({", ".join(_fmt(t) for t in top1)})')
            base = means['uniform', 'uniform']
            gains = [_fmt(means[k, 'chosen'] - base if None not in (means[k, 'chosen'], base)
                          else None) for k in ('uniform', 'stages')]
            lines.append(f'| {budget / scale:g} {unit} | ' + ' | '.join(cells + gains) + ' |')
        lines += ['', 'Mean over seeds (each seed in brackets). The same picks on the held-out '
                  'split (what the search maximizes): searched − uniform, per checkpoint kind:',
                  '', '| budget | U: held-out gain | S: held-out gain | picks over the budget '
                  '(measured) |', '| --- | --- | --- | --- |']
        for budget in budgets:
            gains, over = [], 0
            for kind in ('uniform', 'stages'):
                chosen = picks.get((cost, budget, kind, 'chosen'), {})
                uniform = picks.get((cost, budget, kind, 'uniform'), {})
                gains.append(_mean([chosen[s]['held_out'] - uniform[s]['held_out']
                                    for s in seeds if s in chosen and s in uniform]))
                for by_seed in (chosen, uniform):
                    measured = [p[cost] for p in by_seed.values() if p[cost] is not None]
                    over += sum(1 for m in measured if m > budget)
            total = len(seeds) * 4
            lines.append(f'| {budget / scale:g} {unit} | {_fmt(gains[0])} | {_fmt(gains[1])} | '
                         f'{over} of {total} |')
        lines.append('')
        lines += ['Picks (seed: key, held-out top-1, test top-1, test FLOPs, measured ms):', '']
        for budget in budgets:
            for kind in ('uniform', 'stages'):
                for pick in ('uniform', 'chosen'):
                    for seed, p in sorted(picks.get((cost, budget, kind, pick), {}).items()):
                        over = cost == 'latency_ms' and p['latency_ms'] and \
                            p['latency_ms'] > budget
                        lines.append(
                            f'- {budget / scale:g} {unit}, {kind[0].upper()} {pick}, seed '
                            f'{seed}: `{p["key"]}` {_fmt(p["held_out"])} / {_fmt(p["top1"])}, '
                            f'{_fmt(p["flops"] and p["flops"] / 1e6, 3)} MFLOPs, '
                            f'{_fmt(p["latency_ms"], 3)} ms' + (' (over budget)' if over else ''))
        lines.append('')
    # what per-stage sampling costs the uniform subnets (test set, every trained view)
    by_run = {n: {(r['width'], r['resolution']): r['top1'] for r in d['rows']}
              for n, d in trainings.items()}
    longer = plan.SEARCH_LONGER_BUDGET

    def top1(stages, iters, seed, subnet):
        name = f'mutualnet{"_stages" if stages else ""}_i{iters}_s{seed}'
        return by_run.get(name, {}).get(subnet)

    lines += ['## What per-stage sampling costs the uniform subnets', '',
              'Test top-1 of each uniform subnet (each training run\'s own table, 10 '
              f'calibration batches): S − U at {plan.SEARCH_BUDGET} steps (mean of the seeds, '
              f'and seed 0 alone) and at {longer} steps (seed 0).', '',
              f'| subnet | U {plan.SEARCH_BUDGET} | S − U {plan.SEARCH_BUDGET} | S − U '
              f'{plan.SEARCH_BUDGET}, seed 0 | U {longer}, seed 0 | S − U {longer}, seed 0 |',
              '| --- | --- | --- | --- | --- | --- |']
    columns = {'short': [], 'short0': [], 'long0': []}
    for subnet in sorted(next(iter(by_run.values()), {}), reverse=True):
        short = [(top1(False, plan.SEARCH_BUDGET, s, subnet),
                  top1(True, plan.SEARCH_BUDGET, s, subnet)) for s in seeds]
        diff = [b - a for a, b in short if None not in (a, b)]
        u_long, s_long = top1(False, longer, 0, subnet), top1(True, longer, 0, subnet)
        long0 = s_long - u_long if None not in (u_long, s_long) else None
        short0 = diff[0] if diff else None
        for key, value in (('short', _mean(diff)), ('short0', short0), ('long0', long0)):
            if value is not None:
                columns[key].append(value)
        lines.append(f'| {subnet[0]:g}x-{subnet[1]} | {_fmt(_mean([a for a, _ in short]))} | '
                     f'{_fmt(_mean(diff))} | {_fmt(short0)} | {_fmt(u_long)} | '
                     f'{_fmt(long0)} |')
    lines.append(f'| mean | | {_fmt(_mean(columns["short"]))} | '
                 f'{_fmt(_mean(columns["short0"]))} | | {_fmt(_mean(columns["long0"]))} |')
    lines.append('')
    lines += ['## What the search cost', '',
              '| checkpoint | candidates evaluated | search wall time | s per candidate | '
              'latency table error (mean / max %) |', '| --- | --- | --- | --- | --- |']
    for name, found in searches.items():
        lt = found.get('latency_table') or {}
        lines.append(f'| {name[:-len("_search")]} | {found["candidates_cached"]} (bound '
                     f'{found["evaluation_bound"]}) | {found["search_wall_s"] / 60:.1f} min | '
                     f'{_fmt(found["seconds_per_candidate"])} | '
                     f'{_fmt(lt.get("mean_abs_error_pct"), 1)} / '
                     f'{_fmt(lt.get("max_abs_error_pct"), 1)} |')
    from mutual_mm.fileio import write_text
    write_text(out, '\n'.join(lines) + '\n')
    summary = {f'{c}|{b}|{k}|{p}': v for (c, b, k, p), v in picks.items()}
    common.save_json(osp.join(osp.dirname(out), 'summary.json'), summary, quiet=True)
    print(f'report: {out}')
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', default=runner.Settings().data_root)
    p.add_argument('--results-dir', default=RESULTS_DIR)
    p.add_argument('--work-dir', default=WORK_DIR)
    p.add_argument('--search', nargs='*', default=None,
                   help='search the trained checkpoints (these runs; none named: all)')
    p.add_argument('--report', action='store_true', help='only write the report')
    study.add_arguments(p)
    args = p.parse_args(argv)
    if args.report:
        report(args.results_dir, osp.join(osp.dirname(args.results_dir), 'results.md'))
        return
    s = settings(args)
    trainings = SearchStudy(s)
    if not (args.list or args.only):
        runner.check_data(s.data_root)
    if args.search is not None:
        import torch
        torch.set_num_threads(args.threads)
        for spec in plan.search_runs():
            if not args.search or spec.name in args.search:
                search_run(trainings, spec)
        return
    child = [osp.abspath(__file__), *(sys.argv[1:] if argv is None else argv)]
    study.run_study(trainings, args, child)


if __name__ == '__main__':
    main()
