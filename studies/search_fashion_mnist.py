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
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from studies import study  # noqa: E402
from studies.replication import plan, runner  # noqa: E402

RESULTS_DIR = osp.join(ROOT, 'docs', 'search', 'runs')
WORK_DIR = osp.join(ROOT, 'work_dirs', 'search')


class SearchStudy(runner.FashionMNIST):
    """The four trainings of :func:`plan.search_runs`, each evaluated over the
    uniform subnets on the test set like the replication study's runs."""

    def runs(self):
        return plan.search_runs()


def settings(args) -> runner.Settings:
    return runner.Settings(data_root=args.data_root, results_dir=args.results_dir,
                           work_dir=args.work_dir,
                           train_samples=plan.SEARCH_TRAIN_SAMPLES)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', default=runner.Settings().data_root)
    p.add_argument('--results-dir', default=RESULTS_DIR)
    p.add_argument('--work-dir', default=WORK_DIR)
    study.add_arguments(p)
    args = p.parse_args(argv)
    s = settings(args)
    trainings = SearchStudy(s)
    if not (args.list or args.only):
        runner.check_data(s.data_root)
    child = [osp.abspath(__file__), *(sys.argv[1:] if argv is None else argv)]
    study.run_study(trainings, args, child)


if __name__ == '__main__':
    main()
