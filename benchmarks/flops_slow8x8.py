"""GFLOPs of Slow-8x8 R50 (SlimResNet3dSlowOnly + I3D head, Kinetics-400) at the
paper's configurations (width x spatial x frames), counted by mmengine's
FlopAnalyzer on the compute really done (sliced layers count sliced shapes).
Paper Table IV: 54.5 GFLOPs at 1.0x-224-8, x0.06..x1.0 over width [0.63, 1] x
{142, 178, 224} x {3, 5, 8}.

    .venv/bin/python benchmarks/flops_slow8x8.py [--out benchmarks/results/flops_slow8x8.json]
    .venv/bin/python benchmarks/flops_slow8x8.py --widths 1.0 --sizes 64 --frames 8  # quick
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401
from mutual_mm.hosts import HostForward, host_of, set_model_width  # noqa: E402
from mutual_mm.utils import build_model, load_config  # noqa: E402

CONFIG = 'mmaction::recognition/slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--widths', type=float, nargs='+', default=[1.0, 0.8, 0.63])
    p.add_argument('--sizes', type=int, nargs='+', default=[224, 178, 142])
    p.add_argument('--frames', type=int, nargs='+', default=[8, 5, 3])
    p.add_argument('--out', default=common.result_path('flops_slow8x8'))
    args = p.parse_args(argv)
    cfg = load_config(CONFIG)
    cfg.model.backbone.type = 'SlimResNet3dSlowOnly'
    model = build_model(cfg)
    forward = HostForward(host_of(model), 'scores')  # backbone + I3D head, tensor mode
    rows = []
    with common.Watch() as watch:
        for width in args.widths:
            set_model_width(model, width)
            for size in args.sizes:
                for frames in args.frames:
                    clip = torch.zeros(1, 1, 3, frames, size, size)  # N x clips x C x T x H x W
                    rows.append(dict(width=width, size=size, frames=frames,
                                     gflops=common.count_flops(forward, clip) / 1e9))
                    print(f'{width:5.2f} x {size:3d} x {frames}: {rows[-1]["gflops"]:7.2f} GFLOPs',
                          flush=True)
    full, smallest = max(r['gflops'] for r in rows), min(r['gflops'] for r in rows)
    summary = dict(full_gflops=full, min_gflops=smallest, min_scale=smallest / full,
                   paper_full_gflops=54.5, paper_min_scale=0.06,
                   seconds=round(watch.wall_s, 1), torch=torch.__version__)
    print(summary)
    common.save_json(args.out, dict(summary=summary, rows=rows))


if __name__ == '__main__':
    main()
