"""MutualNet vs US-Net vs independent networks on Fashion-MNIST: the whole study.

One command runs what is missing of the study (``studies/replication/plan.py``:
the budget trend, the seeds, the ablations), run by run (``study.py``: resumable,
an interrupted invocation is continued by running the same command again), and
then writes the report (``results.md``, ``summary.json``, ``accuracy_vs_flops.png``,
``gap_vs_budget.png``) from every result there is::

    nohup .venv/bin/python studies/replicate_fashion_mnist.py --jobs 2 &   # CPU
    .venv/bin/python studies/replicate_fashion_mnist.py --list            # status
    .venv/bin/python studies/replicate_fashion_mnist.py --report          # tables

Data: the Debian package ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``); a missing file stops the command with that instruction.
A GPU is used when torch sees one. Timings: docs/replication.md.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from studies import study  # noqa: E402
from studies.replication import plan, report, runner  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--plan', nargs='+', default=list(plan.PLANS), choices=list(plan.PLANS),
                   help='which groups of runs')
    p.add_argument('--report', action='store_true', help='only write the report')
    d = runner.Settings()
    p.add_argument('--data-root', default=d.data_root)
    p.add_argument('--results-dir', default=osp.join(ROOT, d.results_dir))
    p.add_argument('--out-dir', default=osp.join(ROOT, 'docs', 'replication'),
                   help='where the report goes')
    p.add_argument('--work-dir', default=osp.join(ROOT, d.work_dir),
                   help='checkpoints and logs of the runs')
    study.add_arguments(p)
    args = p.parse_args(argv)
    s = runner.Settings(data_root=args.data_root, results_dir=args.results_dir,
                        work_dir=args.work_dir)
    fm = runner.FashionMNIST(s, args.plan)
    if not args.report:
        if not (args.list or args.only):
            runner.check_data(s.data_root)
        child = [osp.abspath(__file__), *(sys.argv[1:] if argv is None else argv)]
        study.run_study(fm, args, child)
        if args.list or args.only:
            return {}
    summary = report.write_report(s.results_dir, args.out_dir)
    print(f'report: {osp.join(args.out_dir, "results.md")}')
    return summary


if __name__ == '__main__':
    main()
