"""MutualNet vs US-Net vs independent networks on Fashion-MNIST: the whole study.

One command runs what is missing of the study (``benchmarks/replication/plan.py``:
the budget trend, the seeds, the ablations), run by run, and then writes the
report (``summary.json``, ``accuracy_vs_flops.png``, ``gap_vs_budget.png``) from
every result there is. Each run saves its result as soon as it is evaluated and
a checkpoint every 500 steps while it trains, so an interrupted invocation is
continued, not restarted, by running the same command again::

    nohup .venv/bin/python benchmarks/replicate_fashion_mnist.py --jobs 2 &   # CPU
    .venv/bin/python benchmarks/replicate_fashion_mnist.py --list            # status
    .venv/bin/python benchmarks/replicate_fashion_mnist.py --report          # tables

Data: the Debian package ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``); a missing file stops the command with that instruction.
A GPU is used when torch sees one. Timings: docs/replication.md.
"""
import argparse
import datetime
import logging
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from benchmarks.replication import plan, report, runner  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--plan', nargs='+', default=list(plan.PLANS),
                   choices=list(plan.PLANS), help='which groups of runs')
    p.add_argument('--jobs', type=int, default=1,
                   help='runs in parallel, each in its own process with one torch '
                   'thread (2 on a 2-core CPU)')
    p.add_argument('--only', default=None, help='run just this run (by name)')
    p.add_argument('--list', action='store_true', help='list the runs and their state')
    p.add_argument('--report', action='store_true', help='only write the report')
    p.add_argument('--threads', type=int, default=1,
                   help='torch CPU threads with --jobs 1 (ignored on a GPU)')
    d = runner.Settings()
    p.add_argument('--data-root', default=d.data_root)
    p.add_argument('--results-dir', default=osp.join(ROOT, d.results_dir))
    p.add_argument('--out-dir', default=osp.join(ROOT, 'docs', 'replication'),
                   help='where the report goes')
    p.add_argument('--work-dir', default=osp.join(ROOT, d.work_dir),
                   help='checkpoints and logs of the runs')
    p.add_argument('--train-samples', type=int, default=0, help='(tests) first N images')
    p.add_argument('--test-samples', type=int, default=0, help='(tests) first N images')
    p.add_argument('--calib-batches', type=int, default=d.calib_batches)
    p.add_argument('--test-batch-size', type=int, default=d.test_batch_size)
    return p.parse_args(argv)


def settings_of(args) -> runner.Settings:
    return runner.Settings(data_root=args.data_root, results_dir=args.results_dir,
                           work_dir=args.work_dir, train_samples=args.train_samples,
                           test_samples=args.test_samples, calib_batches=args.calib_batches,
                           test_batch_size=args.test_batch_size)


def child_args(args) -> list:
    """The settings a child process of --jobs needs to see the same study."""
    return ['--data-root', args.data_root, '--results-dir', args.results_dir,
            '--out-dir', args.out_dir, '--work-dir', args.work_dir,
            '--train-samples', str(args.train_samples), '--test-samples',
            str(args.test_samples), '--calib-batches', str(args.calib_batches),
            '--test-batch-size', str(args.test_batch_size), '--plan', *args.plan]


def log(msg: str) -> None:
    print(f'[{datetime.datetime.now():%H:%M:%S}] {msg}', flush=True)


def main(argv=None) -> dict:
    args = parse_args(argv)
    s = settings_of(args)
    specs = plan.plan_runs(args.plan)
    if args.list:
        for spec in specs:
            state = 'done' if runner.is_complete(spec, s) else (
                'running' if runner.running_elsewhere(spec, s) else
                'started' if osp.exists(osp.join(s.work_dir, spec.name, 'last_checkpoint'))
                else 'pending')
            print(f'{state:<8} {spec.group:<10} {spec.name}')
        return {}
    if not args.report:
        MMLogger.get_current_instance().setLevel(logging.WARNING)
        if not torch.cuda.is_available():
            torch.set_num_threads(args.threads)
        if args.only is not None:
            chosen = [sp for sp in specs if sp.name == args.only]
            if not chosen:
                raise SystemExit(f'--only {args.only!r}: no such run in plan {args.plan}; '
                                 'see --list')
            runner.execute(chosen[0], s, log)
            return {}
        runner.check_data(s.data_root)
        if args.jobs > 1:
            failed = runner.run_parallel(specs, args.jobs, child_args(args), s, log)
            if failed:
                log(f'{len(failed)} run(s) failed: {failed}')
        else:
            for spec in specs:
                if runner.running_elsewhere(spec, s):
                    log(f'[{spec.name}] skipped: another process is running it')
                    continue
                runner.execute(spec, s, log)
    summary = report.write_report(s.results_dir, args.out_dir)
    print(report.format_summary(summary))
    return summary


if __name__ == '__main__':
    main()
