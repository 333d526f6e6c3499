"""The demo configs' optimizer: AdamW (the demo configs) vs SGD (the provided configs').

The demos train from scratch (no ImageNet weights offline) and must reach a
useful full network within minutes on a 2-core CPU. This trains a demo config
as it is (``adamw``: AdamW, lr 1e-3) and with SGD put back (``sgd``: the
provided config's optimizer, SGD with momentum 0.9 and weight decay 1e-4; lr
0.02 for detection as provided, 0.1 for video, the video demo's lr before
AdamW), same seed, schedule and data, and records the host's own validation
(full network, running BN statistics) every ``--val-interval`` iterations::

    .venv/bin/python benchmarks/demo_recipe.py --tasks detection video --seeds 0 1

One JSON line per validation is appended to ``--out``
(default benchmarks/results/demo_recipe_cpu.jsonl).
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

#: per task: the demo config, the provided config it inherits (``sgd`` takes
#: its optimizer), the lr of ``sgd`` (None: the provided one) and the metric
TASKS = dict(
    detection=dict(config='configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py',
                   provided='configs/mask_rcnn/mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py',
                   sgd_lr=None, metric='coco/bbox_mAP'),
    video=dict(config='configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py',
               provided='configs/kinetics/slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py',
               sgd_lr=0.1, metric='acc/top1'))
RECIPES = ('adamw', 'sgd')


def recipe_cfg(task: str, recipe: str, seed: int, iters: int, val_interval: int,
               work_dir: str):
    """The demo config of ``task`` with the ``recipe``'s optimizer, ``iters``
    iterations (0: the demo's; the cosine ends at the last), validation every
    ``val_interval``."""
    from mutual_mm.utils import load_config
    spec = TASKS[task]
    cfg = load_config(osp.join(ROOT, spec['config']))
    if recipe == 'sgd':
        optimizer = load_config(osp.join(ROOT, spec['provided'])).optim_wrapper.optimizer
        if spec['sgd_lr'] is not None:
            optimizer.lr = spec['sgd_lr']
        cfg.optim_wrapper.optimizer = optimizer
    elif recipe != 'adamw':
        raise ValueError(f'unknown recipe {recipe!r}; valid: {", ".join(RECIPES)}')
    if iters:
        cfg.train_cfg.max_iters = iters
        cfg.param_scheduler[-1]['end'] = iters
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint.interval = cfg.train_cfg.max_iters
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    return cfg


def run(task: str, recipe: str, seed: int, args) -> None:
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    work_dir = osp.join(args.workspace, 'work_dirs', 'demo_recipe', f'{task}_{recipe}_s{seed}')
    cfg = recipe_cfg(task, recipe, seed, args.iters, args.val_interval, work_dir)
    metric = TASKS[task]['metric']
    start = time.time()

    class RecordVal(Hook):
        def after_val_epoch(self, runner, metrics=None):
            line = dict(task=task, recipe=recipe,
                        optimizer=cfg.optim_wrapper.optimizer['type'],
                        lr=cfg.optim_wrapper.optimizer['lr'], seed=seed,
                        threads=args.threads, iters=cfg.train_cfg.max_iters,
                        at=runner.iter, metric=metric, value=metrics.get(metric),
                        seconds=round(time.time() - start))
            print(json.dumps(line), flush=True)
            with open(args.out, 'a') as f:
                f.write(json.dumps(line) + '\n')

    runner = Runner.from_cfg(cfg)
    runner.register_hook(RecordVal())
    runner.train()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    p.add_argument('--recipes', nargs='+', choices=RECIPES, default=list(RECIPES))
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--iters', type=int, default=0, help='0: the demo schedule')
    p.add_argument('--val-interval', type=int, default=100)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--workspace', default=ROOT, help='data/ and work_dirs/ go here')
    p.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results',
                                             'demo_recipe_cpu.jsonl'))
    args = p.parse_args(argv)
    import torch
    import mutual_mm  # noqa: F401
    from make_demo_data import make_demo_data
    torch.set_num_threads(args.threads)
    args.out = osp.abspath(args.out)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    os.makedirs(args.workspace, exist_ok=True)
    os.chdir(args.workspace)  # the demo configs' data paths are relative
    make_demo_data(osp.join('data', 'mutual_demo'))
    for task in args.tasks:
        for seed in args.seeds:
            for recipe in args.recipes:
                run(task, recipe, seed, args)


if __name__ == '__main__':
    main()
