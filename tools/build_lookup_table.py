"""Build the subnet lookup table of a MutualNet checkpoint.

    python tools/build_lookup_table.py CONFIG CHECKPOINT --out-dir DIR \
        [--widths ...] [--resolutions ...] [--frames ...] [--proposals ...] [--metric KEY] \
        [--latency [RUNTIME ...]] [--threads N] [--budgets GFLOPS ...] \
        [--latency-budgets MS ...]

Evaluates every subnet (default: the trained width grid x resolutions
[x frames] [x --proposals, two-stage detectors]) after BN calibration (from the
checkpoint, or done here), with the config's own metric; measures FLOPs (of the
model as deployed, and of backbone + neck) and parameters (and latency with
--latency: in each named runtime registered in mutual_mm.deploy.runtimes:
torch, PyTorch on this device (--latency alone); onnxruntime, each subnet's
whole model exported to ONNX and timed in ONNX Runtime on real test inputs;
onnxruntime-int8, that file quantized to INT8 (its metric measured there); the
files in DIR/onnx/; one row per subnet and runtime, with its precision);
writes DIR/table.csv, DIR/table.json (with the Pareto frontier) and DIR/table.png,
prints the frontier and the best subnet for each --budgets value.
"""
import argparse
import os
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy import (build_lookup_table, pareto_frontier, plot_table,  # noqa: E402
                              save_table, select_subnet, trained_subnets)
from mutual_mm.deploy.runtimes import runtime_names  # noqa: E402
from mutual_mm.fileio import exit_on_sigterm  # noqa: E402
from mutual_mm.ops import parse_width  # noqa: E402
from mutual_mm.utils import load_config, parse_resolution, positive  # noqa: E402


def format_rows(rows, metric):
    lines = [f'{"subnet":<24}{"GFLOPs":>10}{"Mparams":>10}{metric:>18}']
    for r in rows:
        lat = f'{r.latency_ms:9.2f} ms' if r.latency_ms is not None else ''
        lines.append(f'{r.key:<24}{r.flops / 1e9:>10.3f}{r.params / 1e6:>10.2f}'
                     f'{r.metric:>18.4f} {lat}')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--widths', type=parse_width, nargs='+',
                        help='widths, or stage widths joined by "-" (0.25-0.5-1-1-1-1)')
    parser.add_argument('--resolutions', type=parse_resolution, nargs='+')
    parser.add_argument('--frames', type=int, nargs='+')
    parser.add_argument('--proposals', type=int, nargs='+',
                        help='RPN proposals kept per image at test time (two-stage '
                        "detectors; default: the config's test_cfg.rpn.max_per_img)")
    parser.add_argument('--metric', help='evaluator key (default: the main one)')
    parser.add_argument('--flops-scope', choices=('model', 'features'), default='model',
                        help="what the flops column (and --budgets) count: the model as "
                             "deployed (detectors: RoI heads on the regions each input "
                             "sends through them) or backbone + neck ('features'; always "
                             "in the features_flops column)")
    parser.add_argument('--latency', nargs='*', default=None, choices=runtime_names(),
                        metavar='RUNTIME',
                        help='also measure the median latency of one input in each of '
                        'these registered runtimes (choices: %(choices)s): in PyTorch on '
                        'this device (--latency, --latency torch), of the subnet exported '
                        'to ONNX in ONNX Runtime on the CPU (--latency onnxruntime), and of '
                        'that file quantized to INT8 (onnxruntime-int8: its metric measured '
                        'in ONNX Runtime on the test set); one row per subnet and runtime')
    parser.add_argument('--threads', type=positive(int, 'number of threads'), default=None,
                        help='CPU threads latency is measured with (default: ONNX Runtime: '
                        "every CPU this process may use; torch: its own); recorded in "
                        'the table')
    parser.add_argument('--latency-budgets', type=positive(float, 'latency in ms'),
                        nargs='*', default=[],
                        help='latency budgets (ms) to pick the best subnet for (with --latency)')
    parser.add_argument('--num-batches', type=int, default=10,
                        help='calibration batches for subnets not yet calibrated (BN), '
                        'and of each INT8 runtime (activation ranges)')
    parser.add_argument('--budgets', type=positive(float, 'number of GFLOPs'), nargs='*',
                        default=[],
                        help='GFLOPs budgets to pick the best subnet for')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='use subnets outside what the checkpoint was trained on '
                        '(logged and marked trained=False in the table); refused otherwise')
    args = parser.parse_args(argv)
    exit_on_sigterm()  # an interrupted write removes its temporary file
    if args.latency == []:  # --latency alone
        args.latency = ['torch']
    if args.latency_budgets and not args.latency:  # checked before anything is written
        parser.error('--latency-budgets needs --latency')
    if args.latency and len(set(args.latency)) != len(args.latency):
        parser.error(f'--latency names a runtime twice: {" ".join(args.latency)}')
    if args.threads is not None and not args.latency:
        parser.error('--threads needs --latency (it sets the threads latency is timed with)')
    cfg = load_config(args.config)
    subnets = trained_subnets(cfg, args.widths, args.resolutions, args.frames,
                              args.proposals, checkpoint=args.checkpoint)
    os.makedirs(args.out_dir, exist_ok=True)
    cfg.work_dir = osp.join(args.out_dir, 'work')
    rows, metric = build_lookup_table(cfg, args.checkpoint, subnets, args.metric,
                                      args.latency or False, args.num_batches,
                                      flops_scope=args.flops_scope,
                                      allow_untrained=args.allow_untrained,
                                      threads=args.threads,
                                      onnx_dir=osp.join(args.out_dir, 'onnx'))
    plots = [osp.join(args.out_dir, name) for name in ('table.png', 'table_latency.png')]
    for stale in plots:  # a plot of an earlier table must not sit beside this one
        if osp.exists(stale):
            os.remove(stale)
    files = save_table(rows, osp.join(args.out_dir, 'table'), metric)
    files['plot'] = plot_table(
        rows, plots[0], metric,
        flops_label='GFLOPs' + (' (backbone + neck)' if args.flops_scope == 'features' else ''))
    if args.latency:
        files['latency plot'] = plot_table(rows, plots[1], metric, cost='latency')
    print('\nPareto frontier (best subnet for each budget):')
    print(format_rows(pareto_frontier(rows), metric))
    budgets = [(f'{b:g} GFLOPs', dict(max_flops=b * 1e9)) for b in args.budgets] + \
        [(f'{b:g} ms ({", ".join(args.latency)})', dict(max_latency_ms=b))
         for b in args.latency_budgets]
    for name, budget in budgets:
        try:
            best = select_subnet(rows, **budget)
            latency = f', {best.latency_ms:.2f} ms' if best.latency_ms is not None else ''
            print(f'budget {name} -> {best.key} ({best.flops / 1e9:.3f} GFLOPs'
                  f'{latency}, {metric} {best.metric:.4f})')
        except ValueError as err:
            print(f'budget {name} -> {err}')
    for kind, path in files.items():
        print(f'{kind:>12}: {path}')
    return rows


if __name__ == '__main__':
    main()
