"""Is the per-stage latency table's error noise or bias? (docs/search.md)

``tools/search_subnet.py`` predicts a subnet's latency as the sum of its
stages' latencies, each timed alone, plus a "rest" entry, and reports the
error against end-to-end measurements of random subnets. Two explanations of a
large error: the end-to-end measurement itself does not repeat (noise), or the
stages timed alone cost other than inside the whole graph (bias). This measures
each checked subnet end to end ``--rounds`` times, alternating subnets, and
compares the spread of those repeats with the table's error::

    python benchmarks/latency_table_noise.py CONFIG CKPT SEARCH_DIR [--rounds 5] \
        [--cfg-options K=V ...] [--out benchmarks/results/x.json]

(SEARCH_DIR: a search's ``--out-dir``; its ``latency_table.json`` gives the
subnets, the runtime, threads and repeats.) Run it alone on the machine.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

import mutual_mm  # noqa: E402,F401
from benchmarks import common  # noqa: E402
from mutual_mm.deploy.runtimes import build_runtime  # noqa: E402
from mutual_mm.deploy.search import HeldOutScorer, StageLatencyTable  # noqa: E402
from mutual_mm.deploy.search.latency import end_to_end_ms  # noqa: E402
from mutual_mm.deploy.subnet import Subnet  # noqa: E402
from mutual_mm.ops import parse_width  # noqa: E402
from mutual_mm.utils import load_config  # noqa: E402


def subnet_of_key(key: str) -> Subnet:
    """``w0.5-1_s32_f3`` back to a Subnet (square scales only)."""
    parts = dict((p[0], p[1:]) for p in key.split('_'))
    return Subnet(parse_width(parts['w']), int(parts['s']),
                  int(parts['f']) if 'f' in parts else None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('search_dir')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    with open(osp.join(args.search_dir, 'latency_table.json')) as f:
        table = StageLatencyTable(json.load(f))
    identity = table.data['identity']
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = tempfile.mkdtemp(prefix='latency_noise_')
    scorer = HeldOutScorer(cfg, args.checkpoint)
    runtime = build_runtime(identity['runtime'], threads=identity['threads'],
                            repeats=identity['repeats'])
    subnets = [subnet_of_key(r['key']) for r in table.data['check']['subnets']]
    measured = {s.key: [] for s in subnets}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # alternate subnets: drifts hit all alike
            for subnet in subnets:
                measured[subnet.key].append(
                    end_to_end_ms(scorer.model, runtime, subnet, scorer.example, tmp))
    rows = []
    for subnet in subnets:
        ms = measured[subnet.key]
        median = statistics.median(ms)
        predicted = table.predict(subnet)
        rows.append(dict(key=subnet.key, predicted_ms=predicted, measured_ms=ms,
                         median_ms=median,
                         spread_pct=100 * (max(ms) - min(ms)) / median,
                         error_vs_median_pct=100 * (predicted - median) / median,
                         table_check_error_pct=next(
                             r['error_pct'] for r in table.data['check']['subnets']
                             if r['key'] == subnet.key)))
        print(f'{subnet.key}: predicted {predicted:.3f} ms, measured {min(ms):.3f}-'
              f'{max(ms):.3f} (median {median:.3f}), spread {rows[-1]["spread_pct"]:.0f} %, '
              f'prediction - median {rows[-1]["error_vs_median_pct"]:+.0f} %')
    result = dict(config=args.config, checkpoint=args.checkpoint, runtime=identity,
                  rounds=args.rounds, subnets=rows,
                  mean_spread_pct=statistics.mean(r['spread_pct'] for r in rows),
                  mean_abs_error_vs_median_pct=statistics.mean(
                      abs(r['error_vs_median_pct']) for r in rows),
                  mean_signed_error_vs_median_pct=statistics.mean(
                      r['error_vs_median_pct'] for r in rows),
                  versions=common.environment('latency_table_noise', torch.device('cpu')))
    common.save_json(args.out, result)


if __name__ == '__main__':
    main()
