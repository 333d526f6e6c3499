"""INT8 in ONNX Runtime against float32 per subnet: accuracy lost, speed gained,
whether INT8 moves the latency frontier, which operators run in INT8.

``build_lookup_table(latency=['onnxruntime', 'onnxruntime-int8'])`` (BN and INT8
ranges calibrated on 10 training batches; INT8 metric measured in ONNX Runtime on the
test set), then each subnet's two files timed again interleaved, 7 rounds of 10 runs
(1 thread): medians over the rounds, speed-up = median per-round ratio. ``fmnist
CKPT``: studies/replication's SlimMobileNetV1; ``video CKPT --workspace WS``: the demo
SlowOnly (WS/data/mutual_demo); ``detector ONNX``: operators of a whole demo detector
file quantized on 4 random inputs (refused by the runtime). ``--retime``: timing only.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore')

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy import (TableRow, build_lookup_table, pareto_frontier,  # noqa: E402
                              trained_subnets)
from mutual_mm.deploy.complexity import median_ms  # noqa: E402
from mutual_mm.deploy.onnx_export import onnx_session  # noqa: E402
from mutual_mm.deploy.runtimes import quantize_onnx, runtime_operators  # noqa: E402
from mutual_mm.fileio import write_text  # noqa: E402

WIDTHS = [1.0, 0.75, 0.5, 0.25]
SUFFIX = {'fp32': '.onnx', 'int8': '_int8.onnx'}


def model_cfg(name: str, workspace: str):
    if name == 'fmnist':
        from studies.replication import plan, runner
        return runner.run_cfg(plan.RunSpec('mutualnet', 600), runner.Settings()), runner.METRIC
    from mutual_mm.utils import load_config
    os.chdir(workspace)  # the demo config's data paths are relative
    return load_config(osp.join(ROOT, 'configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py')), \
        'acc/top1'


def pairs(rows) -> dict:  # {subnet key: {precision: row}}
    return {k: {r.precision: r for r in rows if r.subnet.key == k}
            for k in dict.fromkeys(r.subnet.key for r in rows)}


def retime(rows, onnx_dir: str, threads: int, rounds: int = 7) -> dict:
    """Each subnet's fp32 and INT8 files timed interleaved: its rows' latencies
    set to the medians over ``rounds``; returns the median per-round ratios."""
    ratios = {}
    for key, pair in pairs(rows).items():
        pair = [pair['fp32'], pair['int8']]
        sessions = [onnx_session(osp.join(onnx_dir, key + SUFFIX[r.precision]), threads)
                    for r in pair]
        spec = sessions[0].get_inputs()[0]
        feed = {spec.name: np.random.default_rng(0).standard_normal(spec.shape, np.float32)}
        times = [[median_ms(lambda s=s: s.run(None, feed), 10, 2) for s in sessions]
                 for _ in range(rounds)]
        for row, samples in zip(pair, zip(*times)):
            row.latency_ms = statistics.median(samples)
        ratios[key] = statistics.median(t[0] / t[1] for t in times)
    return ratios


def compare(rows, ratios) -> dict:
    """Per subnet: fp32 and INT8 metric and latency, the loss and the speed-up;
    the latency frontier of fp32 alone and of both precisions."""
    subnets = [dict(subnet=key, mflops=round(p['fp32'].flops / 1e6, 3),
                    fp32_metric=p['fp32'].metric, int8_metric=p['int8'].metric,
                    metric_lost=round(p['fp32'].metric - p['int8'].metric, 4),
                    fp32_ms=round(p['fp32'].latency_ms, 4), int8_ms=round(p['int8'].latency_ms, 4),
                    speedup=round(ratios[key], 3)) for key, p in pairs(rows).items()]
    fp32, both = (pareto_frontier(rows, 'latency', precisions=p) for p in (['fp32'], None))
    return dict(subnets=subnets, frontier_fp32=[(r.key, r.latency_ms, r.metric) for r in fp32],
                frontier_both=[(r.key, r.latency_ms, r.metric) for r in both],
                int8_on_frontier=sum(r.precision == 'int8' for r in both),
                frontier_size=len(both))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', choices=('fmnist', 'video', 'detector'))
    p.add_argument('checkpoint', help='(detector) the whole-detector ONNX file')
    p.add_argument('--workspace', default=ROOT, help='(video) where data/mutual_demo is')
    p.add_argument('--threads', type=int, default=1, help='ONNX Runtime threads (timing)')
    p.add_argument('--out', default=None)
    p.add_argument('--retime', action='store_true', help='time the files of OUT again')
    args = p.parse_args(argv)
    checkpoint = osp.abspath(args.checkpoint)
    out = osp.abspath(args.out or osp.join(ROOT, 'benchmarks', 'results',
                                           f'int8_onnxruntime_{args.model}_cpu.json'))
    work_dir = osp.join(ROOT, 'work_dirs', 'int8', f'{args.model}_table')
    onnx_dir = osp.join(work_dir, 'onnx')
    with open('/proc/cpuinfo') as f:
        cpu = next((line.split(':', 1)[1].strip() for line in f if 'model name' in line), '?')
    machine = dict(cpu=cpu, cores=os.cpu_count(), threads=args.threads,
                   onnxruntime=onnxruntime.__version__, torch=torch.__version__)
    torch.set_num_threads(1)
    if args.model == 'detector':  # which operators the quantizer makes INT8
        rng = np.random.default_rng(0)
        feeds = [{'input': rng.standard_normal((1, 3, 96, 128), np.float32)} for _ in range(4)]
        with tempfile.TemporaryDirectory() as tmp:
            int8 = quantize_onnx(checkpoint, osp.join(tmp, 'int8.onnx'), feeds)
            result = dict(benchmark='int8_onnxruntime', model='detector', onnx=checkpoint,
                          machine=machine, operators=dict(fp32=runtime_operators(checkpoint),
                                                          int8=runtime_operators(int8)))
        write_text(out, json.dumps(result, indent=1))
        return print(f'{result["operators"]}\nwritten: {out}')
    if args.retime:
        with open(out) as f:
            earlier = json.load(f)
        metric = earlier['metric']
        rows = [TableRow.from_dict(d) for d in earlier.get('table_rows', earlier['rows'])]
    else:
        cfg, metric = model_cfg(args.model, args.workspace)
        cfg.work_dir, cfg.log_level = work_dir, 'WARNING'
        rows, metric = build_lookup_table(cfg, checkpoint, trained_subnets(cfg, widths=WIDTHS),
                                          metric, latency=['onnxruntime', 'onnxruntime-int8'],
                                          num_batches=10, threads=args.threads, onnx_dir=onnx_dir)
    table_rows, full = [r.as_dict() for r in rows], rows[0].subnet.key  # the widest, largest
    ratios = retime(rows, onnx_dir, args.threads)
    result = dict(
        benchmark='int8_onnxruntime', model=args.model, checkpoint=checkpoint, metric=metric,
        command=' '.join([osp.relpath(osp.abspath(sys.argv[0]), ROOT)] + (argv or sys.argv[1:])),
        machine=machine, quantization=dict(
            format='QDQ', weights='int8 per channel, symmetric', activations='uint8 per '
            'tensor, min/max over 10 calibration batches (training images, test pipeline)'),
        operators={k: runtime_operators(osp.join(onnx_dir, full + v), args.threads)
                   for k, v in SUFFIX.items()},
        table_rows=table_rows, rows=[r.as_dict() for r in rows], **compare(rows, ratios))
    write_text(out, json.dumps(result, indent=1))
    print('\n'.join(json.dumps(s) for s in result['subnets']))
    print(f'INT8 on the latency frontier: {result["int8_on_frontier"]} of '
          f'{result["frontier_size"]}; operators: {result["operators"]}\nwritten: {out}')


if __name__ == '__main__':
    main()
