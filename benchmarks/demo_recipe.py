"""The demo detector's optimizer: AdamW (the demo config) vs the provided SGD.

The demo trains its Mask R-CNN from scratch (no ImageNet weights offline) and
must reach a useful full-network bbox mAP within minutes on a 2-core CPU. This
trains the demo config as it is (``adamw``: AdamW, lr 1e-3) and with the
provided config's optimizer put back (``sgd``: SGD, lr 0.02, momentum 0.9,
weight decay 1e-4), same seed, schedule and data, and records mmdet's own
validation (full network, running BN statistics) every ``--val-interval``
iterations::

    .venv/bin/python benchmarks/demo_detection_recipe.py --recipes adamw sgd --seeds 0 1

One JSON line per validation is appended to ``--out``
(default benchmarks/results/demo_detection_recipe_cpu.jsonl).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for path in (ROOT, osp.join(ROOT, 'tools')):
    if path not in sys.path:
        sys.path.insert(0, path)

CONFIG = 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py'
#: the provided config the demo inherits; ``sgd`` takes its optimizer
PROVIDED = 'configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py'


def recipe_cfg(recipe: str, seed: int, iters: int, val_interval: int, work_dir: str):
    from mutual_mm.utils import load_config
    cfg = load_config(osp.join(ROOT, CONFIG))
    if recipe == 'sgd':
        cfg.optim_wrapper.optimizer = load_config(osp.join(ROOT, PROVIDED)).optim_wrapper.optimizer
    elif recipe != 'adamw':
        raise ValueError(f'unknown recipe {recipe!r}; valid: adamw, sgd')
    if iters:
        cfg.train_cfg.max_iters = iters
        cfg.param_scheduler[-1]['end'] = iters
    iters = cfg.train_cfg.max_iters
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint.interval = iters
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    return cfg


def run(recipe: str, seed: int, args) -> None:
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    work_dir = osp.join(args.workspace, 'work_dirs', 'demo_recipe', f'{recipe}_s{seed}')
    cfg = recipe_cfg(recipe, seed, args.iters, args.val_interval, work_dir)
    start = time.time()

    class RecordVal(Hook):
        def after_val_epoch(self, runner, metrics=None):
            line = dict(recipe=recipe, optimizer=cfg.optim_wrapper.optimizer['type'],
                        seed=seed, threads=args.threads, iters=cfg.train_cfg.max_iters,
                        at=runner.iter, bbox_mAP=metrics.get('coco/bbox_mAP'),
                        segm_mAP=metrics.get('coco/segm_mAP'),
                        seconds=round(time.time() - start))
            print(json.dumps(line))
            with open(args.out, 'a') as f:
                f.write(json.dumps(line) + '\n')

    runner = Runner.from_cfg(cfg)
    runner.register_hook(RecordVal())
    runner.train()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--recipes', nargs='+', choices=('adamw', 'sgd'), default=['adamw', 'sgd'])
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--iters', type=int, default=0, help='0: the demo schedule')
    p.add_argument('--val-interval', type=int, default=200)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--workspace', default=ROOT, help='data/ and work_dirs/ go here')
    p.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results',
                                             'demo_detection_recipe_cpu.jsonl'))
    p.add_argument('--quick', action='store_true', help='tiny data, 2 iterations (tests)')
    args = p.parse_args(argv)
    import torch
    import mutual_mm  # noqa: F401
    from make_demo_data import make_demo_data
    torch.set_num_threads(args.threads)
    if args.quick:
        args.iters, args.val_interval = 2, 2
    args.out = osp.abspath(args.out)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    os.makedirs(args.workspace, exist_ok=True)
    os.chdir(args.workspace)  # the demo config's data paths are relative
    make_demo_data(osp.join('data', 'mutual_demo'),
                   **(dict(images=(8, 4), videos=(8, 4)) if args.quick else {}))
    for seed in args.seeds:
        for recipe in args.recipes:
            run(recipe, seed, args)


if __name__ == '__main__':
    main()
