"""Training with views made from the batch vs MultiResolution, on the demo tasks.

Per view the two agree (tests/test_batch_views.py, test_detection_batch_views.py);
this measures what a user cares about next: the accuracy after training. Each
(task, mode, seed) trains the demo config with one torch thread and the given
iterations, in both modes from the same seed, then:

* video: BN-calibrates and evaluates three subnets (w1 48 px x 8 frames,
  w0.5 38 x 5, w0.25 30 x 3) with ``build_lookup_table``;
* detection: reads the end-of-training validation (bbox mAP of the full
  network, mmdet's own val at the last iteration, running BN statistics), then
  BN-calibrates and evaluates three subnets (w1 128x96, w0.5 128x58,
  w0.25 128x38) the same way.

    .venv/bin/python benchmarks/ab_batch_views_demo.py --tasks video --seeds 0 1
    .venv/bin/python benchmarks/ab_batch_views_demo.py --tasks detection --iters 500

One JSON line per run is appended to ``--out``
(default benchmarks/results/batch_views_vs_pipeline_demo_cpu.jsonl).
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for path in (ROOT, osp.join(ROOT, 'tools')):
    if path not in sys.path:
        sys.path.insert(0, path)

CONFIGS = dict(
    detection='configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py',
    video='configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py')
SUBNETS = dict(video=((1.0, 48, 8), (0.5, 38, 5), (0.25, 30, 3)),
               detection=((1.0, (128, 96)), (0.5, (128, 58)), (0.25, (128, 38))))
METRICS = dict(video='acc/top1', detection='coco/bbox_mAP')


def mode_cfg(task: str, mode: str, cfg):
    """The demo config with its views in the pipeline ('pipeline':
    MultiResolution) or made from the batch ('batch': the hook's batch_views)."""
    cfg = copy.deepcopy(cfg)
    pipeline = cfg.train_dataloader.dataset.pipeline
    hook = cfg.custom_hooks[0]
    multi = next((t for t in pipeline if t['type'] == 'MultiResolution'), None)
    if mode == 'batch' and multi is not None:
        pipeline.remove(multi)
        if task == 'detection':
            pipeline += [dict(type='Resize', scale=multi['scales'][0], keep_ratio=True),
                         dict(type='PackDetInputs')]
            hook['batch_views'] = dict(scales=multi['scales'])
        else:  # the crop already has the first view's size
            pipeline += [dict(type='FormatShape', input_format='NCTHW'),
                         dict(type='PackActionInputs')]
            hook['batch_views'] = dict(scales=multi['scales'], frames=multi['frames'])
    elif mode == 'pipeline' and multi is None:
        raise ValueError(f'{CONFIGS[task]} has no MultiResolution to compare with')
    return cfg


def run(task: str, mode: str, seed: int, iters: int, work_root: str) -> dict:
    from mmengine.runner import Runner

    from mutual_mm.deploy import Subnet, build_lookup_table
    from mutual_mm.utils import load_config
    cfg = mode_cfg(task, mode, load_config(osp.join(ROOT, CONFIGS[task])))
    cfg.work_dir = osp.join(work_root, f'{task}_{mode}_i{iters}_s{seed}')
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.param_scheduler[-1]['end'] = iters
    start = time.time()
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    record = dict(task=task, mode=mode, seed=seed, iterations=iters,
                  train_seconds=round(time.time() - start))
    if task == 'detection':
        record['full_bbox_mAP_end_of_training_val'] = float(
            runner.message_hub.get_scalar('val/coco/bbox_mAP').current())
    rows, _ = build_lookup_table(cfg, osp.join(cfg.work_dir, f'iter_{iters}.pth'),
                                 [Subnet(*s) for s in SUBNETS[task]], METRICS[task],
                                 num_batches=8)
    record.update({r.subnet.key: r.metric for r in rows})
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tasks', nargs='+', choices=list(CONFIGS), default=['video'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--iters', type=int, default=0, help='0: the demo config\'s')
    p.add_argument('--workspace', default=ROOT, help='data/ and work_dirs/ go here')
    p.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results',
                                             'batch_views_vs_pipeline_demo_cpu.jsonl'))
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    import mutual_mm  # noqa: F401
    from make_demo_data import make_demo_data

    from mutual_mm.utils import load_config
    os.makedirs(args.workspace, exist_ok=True)
    out = osp.abspath(args.out)
    os.chdir(args.workspace)  # the demo configs' data paths are relative
    make_demo_data(osp.join('data', 'mutual_demo'))
    for task in args.tasks:
        iters = args.iters or load_config(osp.join(ROOT, CONFIGS[task])).train_cfg.max_iters
        for seed in args.seeds:
            for mode in ('pipeline', 'batch'):
                record = run(task, mode, seed, iters,
                             osp.join(args.workspace, 'work_dirs', 'ab_batch_views'))
                print(json.dumps(record), flush=True)
                with open(out, 'a') as f:
                    f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
    main()
