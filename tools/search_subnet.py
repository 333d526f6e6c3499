"""Search one width per backbone stage (x the trained input views) for the best
subnet of a MutualNet checkpoint under each budget.

    python tools/search_subnet.py CONFIG CHECKPOINT --flops-budgets 2e6 4e6 \
        [--latency-budgets 1.5 3 --runtime onnxruntime] [--held-out N] \
        [--search-step 0.25] [--out-dir DIR] [--allow-untrained] \
        [--calibration-batches 3] [--threads 1] [--cfg-options KEY=VALUE ...]

Greedy, as AutoSlim (Yu & Huang 2019): per trained view, from the full width,
each step lowers the one stage whose next-narrower width loses the least
held-out score per unit of cost saved (FLOPs; with only --latency-budgets, the
latency predicted by a per-stage latency table timed in --runtime), until the
cost is below every budget. Every uniform subnet is evaluated too, so the
pick is never worse on the held-out split than the best uniform one.

Candidates are scored with the config's test metric on the last N samples of
the config's TRAINING set (--held-out; default 10 %, at most 5000), after BN
calibration on --calibration-batches batches of the other training samples;
the config's test set is used only for the final table. Widths move on the
trained grid subsampled to --search-step. A checkpoint trained with uniform
widths only (MutualLearningHook(stage_widths=False)) is refused unless
--allow-untrained.

Writes in DIR (default: work_dirs/search): search_state.json (every evaluated
candidate; rerunning the same command resumes from it), latency_table.json
(with --runtime: the table and its error against end-to-end measurements),
search.json (per budget the chosen subnet and the best uniform one, their cost
and held-out score; candidates evaluated and reused, wall time), calibrated.pth
(the checkpoint with the picks' BN statistics) and table.csv/table.json (the
picks on the test set, in the lookup-table format: tools/export_subnet.py and
select_subnet take them), and prints the command exporting each pick.
"""
import argparse
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import DictAction  # noqa: E402

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy.runtimes import module_timing_runtimes, runtime_names  # noqa: E402
from mutual_mm.deploy.search import check_budgets, search_subnet  # noqa: E402
from mutual_mm.fileio import exit_on_sigterm  # noqa: E402
from mutual_mm.utils import load_config, positive  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--flops-budgets', type=positive(float, 'number of FLOPs'),
                        nargs='+', default=[], metavar='FLOPS',
                        help='FLOPs budgets (whole model, one input), e.g. 2e6 4e6')
    parser.add_argument('--latency-budgets', type=positive(float, 'latency in ms'),
                        nargs='+', default=[], metavar='MS',
                        help='latency budgets (ms) in --runtime')
    parser.add_argument('--runtime', metavar='NAME',
                        help='registered runtime latency is timed in (per-stage table, '
                        f'final table); registered: {", ".join(runtime_names())}; able '
                        f'to time stages: {", ".join(module_timing_runtimes())}')
    parser.add_argument('--held-out', type=positive(int, 'number of samples'),
                        help='held-out samples: the last N of the training set '
                        '(default: 10 %%, at most 5000)')
    parser.add_argument('--search-step', type=positive(float, 'width step'),
                        help="the search grid's step: a multiple of the trained grid's "
                        '(default: the trained step)')
    parser.add_argument('--out-dir', default='work_dirs/search')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='search stage widths on a checkpoint trained with uniform '
                        'widths only (refused otherwise)')
    parser.add_argument('--calibration-batches', type=positive(int, 'number of batches'),
                        default=3, help='BN calibration batches per candidate')
    parser.add_argument('--threads', type=positive(int, 'number of threads'),
                        help='CPU threads latency is timed with (recorded)')
    parser.add_argument('--metric', help='evaluator key (default: the main one)')
    parser.add_argument('--latency-repeats', type=positive(int, 'number of runs'),
                        default=10, help='timed runs per latency measurement')
    parser.add_argument('--latency-checks', type=positive(int, 'number of subnets'),
                        default=8, help='random stage-width subnets measured end to '
                        'end to check the latency table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings, as mmengine tools do (e.g. '
                        'train_dataloader.dataset.indices=192: what the checkpoint trained on)')
    args = parser.parse_args(argv)
    exit_on_sigterm()  # an interrupted write removes its temporary file
    if not args.flops_budgets and not args.latency_budgets:
        parser.error('give --flops-budgets and/or --latency-budgets')
    if args.latency_budgets and not args.runtime:
        parser.error('--latency-budgets needs --runtime (valid: '
                     f'{", ".join(module_timing_runtimes())})')
    try:  # a bad value: the message names it and what is valid
        check_budgets(args.flops_budgets, args.latency_budgets, args.runtime)
        cfg = load_config(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        return search_subnet(
            cfg, args.checkpoint, args.out_dir, args.flops_budgets, args.latency_budgets,
            args.runtime, args.held_out, args.search_step, args.allow_untrained,
            args.calibration_batches, args.threads, args.metric, args.latency_repeats,
            args.latency_checks, config_path=args.config)
    except ValueError as err:
        sys.exit(f'search_subnet.py: error: {err}')


if __name__ == '__main__':
    main()
