"""The main job: the whole MutualNet workflow on data generated on the fly.

    bash tools/demo.sh [--workspace DIR] [--tasks detection video] [--quick]

1. generates a small COCO-format detection set (shapes with masks) and a small
   Kinetics-format video set (.mp4 clips of a small square or ring; class:
   its shape and the direction it moves in);
2. trains a MutualNet Mask R-CNN with ``mim train mmdet`` on the demo config
   (configs/demo/, inheriting the provided COCO config), as a user would;
3. calibrates BN for a grid of (width, resolution) subnets, evaluates
   each (x 2 RPN proposal counts) with the config's own metric, exports each
   whole detector to ONNX and times it in ONNX Runtime on validation images,
   writes the lookup table and the metric-vs-FLOPs and metric-vs-latency
   plots, prints the Pareto frontier, picks the best subnet for two FLOPs
   budgets and for half the full model's latency, and evaluates that pick's
   ONNX file in ONNX Runtime on the validation set (against PyTorch);
4. does the same for a slimmed SlowOnly on the video set (``mim train mmaction2``);
5. prints where everything was written.

Paths in the demo configs are relative to the workspace (default: the
repository root): data in WORKSPACE/data/mutual_demo, runs in
WORKSPACE/work_dirs/mutual_demo. ``--quick`` (what the test runs) uses tiny
data and 2 training iterations.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
# calibration and the table each build a Runner in this process; mmengine warns
# when the second one asks for its (already made) visualizer again: harmless
warnings.filterwarnings('ignore', message='.*instance named of visualizer has been created')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))

DEMOS = [
    dict(name='detection', host='mmdet',
         config=osp.join(ROOT, 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py'),
         widths=[1.0, 0.75, 0.5, 0.25], metric='coco/bbox_mAP',
         # the RPN proposals kept per image at test time: a third axis
         proposals=[100, 20],
         # FLOPs and latency of the whole detector as deployed (RoI heads on
         # the regions each image sends through them); each subnet exported
         # whole to ONNX and timed in ONNX Runtime (CPU, 1 thread), the pick
         # under half the full model's latency evaluated there
         flops_scope='model', latency='onnxruntime', evaluate_pick_in_onnxruntime=True),
    dict(name='video', host='mmaction2',
         config=osp.join(ROOT, 'configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py'),
         widths=[1.0, 0.75, 0.5, 0.25], metric='acc/top1', flops_scope='model',
         # each subnet exported to ONNX and timed in ONNX Runtime (CPU, 1 thread)
         latency='onnxruntime'),
]
QUICK_DATA = dict(images=(8, 4), videos=(8, 4))
QUICK_OPTIONS = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                 'default_hooks.checkpoint.interval': 2}
ITER_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\]')


def train(demo: dict, work_dir: str, options: dict, log_path: str) -> str:
    """``mim train HOST CONFIG`` with a progress bar; returns the last checkpoint."""
    from tqdm import tqdm
    cmd = ['mim', 'train', demo['host'], demo['config'], '--work-dir', work_dir]
    if options:
        cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONUNBUFFERED='1')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    print(f'$ {" ".join(cmd)}\n  (log: {log_path})')
    bar = None
    with open(log_path, 'w') as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env) as proc:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            match = ITER_LINE.search(line)
            if match:
                done, total = int(match[1]), int(match[2])
                if bar is None:
                    bar = tqdm(total=total, desc=f'train {demo["name"]}', unit='it')
                bar.update(done - bar.n)
        proc.wait()
    if bar is not None:
        bar.close()
    if proc.returncode:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        raise SystemExit(f'training failed (exit {proc.returncode}); last lines of '
                         f'{log_path}:\n{tail}')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def calibrate_and_tabulate(demo: dict, checkpoint: str, out_dir: str, options: dict,
                           num_batches: int):
    """BN calibration per subnet, then the lookup table and its plot. The
    evaluators' per-subnet output (a full COCO summary each) goes to
    OUT_DIR/eval.log; the terminal gets one progress bar."""
    from tqdm import tqdm

    from mutual_mm.deploy import (build_lookup_table, calibrate_checkpoint, plot_table,
                                  save_table, trained_subnets)
    from mutual_mm.utils import load_config
    cfg = load_config(demo['config'])
    cfg.merge_from_dict(options)
    cfg.work_dir = osp.join(out_dir, 'work')
    cfg.log_level = 'WARNING'
    subnets = trained_subnets(cfg, widths=demo['widths'], proposals=demo.get('proposals'),
                              checkpoint=checkpoint)
    calibrated = osp.join(out_dir, 'calibrated.pth')
    eval_log = osp.join(out_dir, 'eval.log')
    axes = ' x '.join(['widths', 'the trained resolutions']
                      + (['proposals'] if demo.get('proposals') else []))
    print(f'calibrating BN, then evaluating {len(subnets)} subnets ({axes}) on the val '
          f'split\n  (log: {eval_log})')
    bar = tqdm(total=len(subnets), desc=f'evaluate {demo["name"]}', unit='subnet',
               file=sys.stderr)
    with open(eval_log, 'w') as log, contextlib.redirect_stdout(log):
        calibrate_checkpoint(cfg, checkpoint, calibrated, subnets, num_batches)
        rows, metric = build_lookup_table(cfg, calibrated, subnets, demo['metric'],
                                          latency=demo.get('latency', False),
                                          flops_scope=demo['flops_scope'], threads=1,
                                          onnx_dir=osp.join(out_dir, 'onnx'),
                                          on_row=lambda row: bar.update())
    bar.close()
    files = save_table(rows, osp.join(out_dir, 'table'), metric)
    flops_label = 'GFLOPs' + (' (backbone + neck)' if demo['flops_scope'] == 'features'
                              else ' (whole model)')
    files['plot'] = plot_table(rows, osp.join(out_dir, 'table.png'), metric,
                               title=f'MutualNet demo ({demo["name"]}): {metric} vs FLOPs',
                               flops_label=flops_label)
    if demo.get('latency'):
        files['latency plot'] = plot_table(
            rows, osp.join(out_dir, 'table_latency.png'), metric, cost='latency',
            title=f'MutualNet demo ({demo["name"]}): {metric} vs ONNX Runtime latency')
    files['calibrated checkpoint'] = calibrated
    files['evaluation log'] = eval_log
    return rows, metric, files


def report(demo: dict, rows, metric: str, out_dir: str, checkpoint: str) -> dict:
    """Print the Pareto frontier and the picks for two budgets (and, with
    latencies, under half the full network's latency); return a summary."""
    from mutual_mm.deploy import pareto_frontier, select_subnet
    # the full network: widest, largest input, most proposals
    full = max(rows, key=lambda r: (r.subnet.width, r.features_flops or r.flops,
                                    r.subnet.proposals or 0))
    smallest = min(rows, key=lambda r: r.flops)
    latency = bool(demo.get('latency'))
    scope = 'backbone + neck' if demo['flops_scope'] == 'features' else 'whole model'
    print(f'\n{demo["name"]}: Pareto frontier ({metric}; best subnet per budget; '
          f'FLOPs of the {scope}' + ('; latency in ONNX Runtime, CPU, 1 thread)'
                                     if latency else ')'))
    print(f'  {"subnet":<24}{"MFLOPs":>10}{"x full":>9}' + ('      ms' if latency else '')
          + f'{metric:>16}')
    for r in pareto_frontier(rows):
        print(f'  {r.subnet.key:<24}{r.flops / 1e6:>10.1f}{r.flops / full.flops:>9.2f}'
              + (f'{r.latency_ms:>8.1f}' if latency else '') + f'{r.metric:>16.4f}')
    picks = {}
    for fraction in (0.5, 0.25):
        budget = fraction * full.flops
        try:
            best = select_subnet(rows, max_flops=budget)
            picks[fraction] = best
            print(f'  budget {fraction:.0%} of the full FLOPs ({budget / 1e6:.1f} MFLOPs) -> '
                  f'{best.subnet.key}: {metric} {best.metric:.4f} at {best.flops / 1e6:.1f} MFLOPs')
        except ValueError as err:
            print(f'  budget {fraction:.0%}: {err}')
    summary = dict(full=full.as_dict(), smallest=smallest.as_dict(),
                   picks={str(k): v.as_dict() for k, v in picks.items()})
    if latency:
        budget = 0.5 * full.latency_ms
        best = select_subnet(rows, max_latency_ms=budget)
        onnx_file = osp.join(out_dir, 'onnx', f'{best.subnet.key}.onnx')
        print(f'  budget {budget:.2f} ms in ONNX Runtime (half the full network\'s '
              f'{full.latency_ms:.2f} ms, CPU, 1 thread) -> {best.subnet.key}: {metric} '
              f'{best.metric:.4f} at {best.latency_ms:.2f} ms\n'
              f'    its ONNX file (needs neither PyTorch nor mutual_mm): {onnx_file}')
        summary['latency_pick'] = dict(best.as_dict(), budget_ms=budget, onnx=onnx_file)
        if demo.get('evaluate_pick_in_onnxruntime'):
            summary['latency_pick'].update(
                evaluate_pick(demo, best.subnet, checkpoint, out_dir))
    return summary


def evaluate_pick(demo: dict, subnet, checkpoint: str, out_dir: str) -> dict:
    """The picked subnet exported whole (tools/export_subnet.py --onnx
    --onnx-eval), its metrics in ONNX Runtime and in PyTorch (the exported
    static model in a Runner, as `mim test` runs it) on the validation set."""
    import copy
    from mmengine.runner import Runner

    from export_subnet import main as export
    cfg_dir = osp.join(out_dir, 'subnet')
    args = [demo['config'], checkpoint, '--width', str(subnet.width), '--out-dir', cfg_dir,
            '--onnx', '--onnx-eval', '--threads', '1']
    if subnet.scale is not None:
        args += ['--resolution', 'x'.join(map(str, subnet.scale))]
    if subnet.proposals is not None:
        args += ['--proposals', str(subnet.proposals)]
    eval_log = osp.join(out_dir, 'eval.log')
    with open(eval_log, 'a') as log, contextlib.redirect_stdout(log), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # mmdet deprecations, MMDeploy's calls
        _, config, onnx = export(args)
        from mutual_mm.utils import load_config
        cfg = load_config(config)
        cfg.work_dir = osp.join(cfg_dir, 'work')
        cfg.log_level = 'WARNING'
        torch_metrics = Runner.from_cfg(copy.deepcopy(cfg)).test()
    onnx_metrics = onnx['metrics']
    keys = [k for k in ('coco/bbox_mAP', 'coco/segm_mAP') if k in onnx_metrics]
    print(f'    that file in ONNX Runtime on the val set: ' + ', '.join(
        f'{k.split("/")[-1]} {onnx_metrics[k]:.4f} (PyTorch {torch_metrics[k]:.4f})'
        for k in keys))
    check = {k: v for k, v in onnx.items() if k not in ('metrics', 'path')}
    return dict(onnx_metrics={k: onnx_metrics[k] for k in keys},
                torch_metrics={k: float(torch_metrics[k]) for k in keys},
                onnx_check=check, exported_config=config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workspace', default=ROOT,
                        help='where data/ and work_dirs/ go (default: the repository)')
    parser.add_argument('--tasks', nargs='+', choices=[d['name'] for d in DEMOS],
                        default=[d['name'] for d in DEMOS], help='which demos to run')
    parser.add_argument('--quick', action='store_true',
                        help='tiny data, 2 iterations: checks the pipeline (CI)')
    args = parser.parse_args(argv)

    import mutual_mm  # noqa: F401  (repairs the stack before mmaction is imported)
    from make_demo_data import make_demo_data

    start = time.time()
    os.makedirs(args.workspace, exist_ok=True)
    os.chdir(args.workspace)  # the demo configs' data paths are relative
    data_dir = osp.join('data', 'mutual_demo')
    runs = osp.abspath(osp.join('work_dirs', 'mutual_demo'))
    print(f'[1/5] generating the demo data in {osp.abspath(data_dir)}')
    make_demo_data(data_dir, **(QUICK_DATA if args.quick else {}))
    options = dict(QUICK_OPTIONS) if args.quick else {}

    summary, outputs = {}, {}
    demos = [d for d in DEMOS if d['name'] in args.tasks]
    for step, demo in enumerate(demos):
        out_dir = osp.join(runs, demo['name'])
        os.makedirs(out_dir, exist_ok=True)
        t0 = time.time()
        print(f'\n[{2 + 2 * step}/5] training the {demo["name"]} MutualNet')
        checkpoint = train(demo, osp.join(out_dir, 'train'), options,
                           osp.join(out_dir, 'train.log'))
        print(f'\n[{3 + 2 * step}/5] calibration, lookup table and plot ({demo["name"]})')
        rows, metric, files = calibrate_and_tabulate(demo, checkpoint, out_dir, options,
                                                     1 if args.quick else 8)
        summary[demo['name']] = dict(report(demo, rows, metric, out_dir,
                                            files['calibrated checkpoint']), metric=metric,
                                     minutes=round((time.time() - t0) / 60, 2))
        outputs[demo['name']] = dict(checkpoint=checkpoint, work_dir=osp.join(out_dir, 'train'),
                                     **files)

    summary['total_minutes'] = round((time.time() - start) / 60, 2)
    from mutual_mm.fileio import write_text
    write_text(osp.join(runs, 'summary.json'), json.dumps(summary, indent=2))
    print(f'\n[5/5] done in {summary["total_minutes"]:.1f} min; written:')
    for name, files in outputs.items():
        for kind, path in files.items():
            print(f'  {name:<10} {kind:<22} {path}')
    print(f'  {"summary":<33} {osp.join(runs, "summary.json")}')
    return summary


if __name__ == '__main__':
    main()
