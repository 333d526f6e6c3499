"""Speed of the slimmable backbones against their references (forward + backward).

``--model resnet50`` (default): ``SlimResNet`` against mmdet's ``ResNet`` (depth
50, mmdet's defaults); ``--model slowonly``: ``SlimResNet3dSlowOnly`` against
mmaction's ``ResNet3dSlowOnly`` with the stock Slow-8x8 R50 config's arguments
(on the CPU batch 1 of 8 x 112 x 112 clips by default). Two ratios of times
measured in the same rounds: ``slim@1.0 / stock@1.0`` (same weights, target
<= 1.03) and, for w in ``--widths``, ``slim@w / static@w`` against
``export_static`` of the slim network at w (target <= 1.10). A step is forward,
``sum(o.mean())``, backward, ``zero_grad`` in train mode; every round runs every
variant once, the order rotating. Reported per pair: the median of the per-round
ratios (pass/OVER) and the ratio of the medians; per variant: median time,
active parameters and the forward FLOPs of one input (the slim model traced
itself must count what its export counts; the export must compute what it does).

    .venv/bin/python benchmarks/bench_backbones.py --size 160 --batch 8
    .venv/bin/python benchmarks/bench_backbones.py --device cuda --cudnn-benchmark
    .venv/bin/python benchmarks/bench_backbones.py --model slowonly --threads 1 [--size 224]

Output: a table, and ``--out`` (default
``benchmarks/results/backbones[_slowonly]_<device>.json``).
"""
from __future__ import annotations

import os.path as osp
import statistics
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers modules)
from mutual_mm.models import SlimResNet, SlimResNet3dSlowOnly  # noqa: E402
from mutual_mm.ops import export_static  # noqa: E402

TARGET_FULL, TARGET_WIDTH = 1.03, 1.10  # slim@1.0 / stock, slim@w / static@w
# the backbone of mmaction's slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py
SLOWONLY_ARGS = dict(depth=50, pretrained=None, lateral=False, conv1_kernel=(1, 7, 7),
                     conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1),
                     norm_eval=False)
# the keys of this script's earlier results
RENAME = {k: f'{k}_version' for k in common.VERSION_KEYS}


def parse_args(argv=None):
    p = common.arg_parser(__doc__)
    p.add_argument('--model', choices=('resnet50', 'slowonly'), default='resnet50')
    p.add_argument('--batch', type=int, default=None,
                   help='default: resnet50 2 on cpu, 32 on cuda; slowonly 1 on cpu, 8 on cuda')
    p.add_argument('--size', type=int, default=None,
                   help='input height = width (default 224; slowonly on cpu: 112)')
    p.add_argument('--frames', type=int, default=8, help='input frames (slowonly only)')
    p.add_argument('--repeats', type=int, default=None, help='timed rounds (cpu 10, cuda 50)')
    p.add_argument('--warmup', type=int, default=None, help='untimed rounds (cpu 2, cuda 10)')
    p.add_argument('--widths', type=float, nargs='+', default=[0.75, 0.5, 0.25],
                   help='reduced widths compared with their static export')
    args = p.parse_args(argv)
    slowonly = args.model == 'slowonly'
    common.finish_args(
        p, args, 'backbones_slowonly_{device}' if slowonly else 'backbones_{device}',
        positive=('batch', 'size', 'repeats', 'frames'), non_negative=('warmup',),
        batch=(8, 1) if slowonly else (32, 2), size=(224, 112 if slowonly else 224),
        repeats=(50, 10), warmup=(10, 2))
    if not all(0 < w < 1 for w in args.widths):
        p.error(f'--widths must be in (0, 1), got {args.widths}')
    return args


def as_tuple(outs):
    return (outs,) if isinstance(outs, torch.Tensor) else tuple(outs)


def build_variants(model: str, widths, x1: torch.Tensor) -> tuple:
    """``{name: (network, width or None (not slim), reference)}``, the stock and
    slim backbones with the same weights and the static export at each width,
    and the check that each export computes what the slim network does (eval
    mode: the running statistics stay untouched)."""
    if model == 'slowonly':
        from mmaction.models.backbones import ResNet3dSlowOnly
        stock, slim = ResNet3dSlowOnly(**SLOWONLY_ARGS), SlimResNet3dSlowOnly(**SLOWONLY_ARGS)
    else:
        from mmdet.models.backbones import ResNet
        stock, slim = ResNet(depth=50), SlimResNet(depth=50)
    slim.load_state_dict(stock.state_dict(), strict=True)
    stock.to(x1.device).train()
    slim.to(x1.device).train()
    variants = {'stock@1.0': (stock, None, None), 'slim@1.0': (slim, 1.0, 'stock@1.0')}
    checks = {}
    for w in widths:
        slim.set_width(w)
        static = export_static(slim, x1).to(x1.device)
        slim.eval(), static.eval()
        with torch.no_grad():
            a, b = as_tuple(slim(x1)), as_tuple(static(x1))
        slim.train(), static.train()
        checks[f'{w:g}'] = dict(out_shapes=[list(t.shape) for t in a],
                                max_abs_diff=max(float((t - u).abs().max()) for t, u in zip(a, b)))
        variants[f'static@{w:g}'] = (static, None, None)
        variants[f'slim@{w:g}'] = (slim, w, f'static@{w:g}')
    return variants, checks


def step(network, x) -> None:
    sum(o.mean() for o in as_tuple(network(x))).backward()
    network.zero_grad(set_to_none=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    frames = (args.frames,) if args.model == 'slowonly' else ()
    x = torch.randn(args.batch, 3, *frames, args.size, args.size, device=device)
    variants, checks = build_variants(args.model, args.widths, x[:1])
    def prepare(name):  # the slim width, outside the timed step
        net, width, _ = variants[name]
        if width is not None:
            net.set_width(width)

    info = {}
    for name, (net, width, _) in variants.items():
        prepare(name)
        info[name] = dict(params_stored=sum(p.numel() for p in net.parameters()),
                          flops=common.count_flops(net, x[:1]))
    times, watch = common.round_robin(
        {name: (lambda v=v: step(v[0], x)) for name, v in variants.items()},
        device, args.warmup, args.repeats, prepare)
    rows = []
    print(f'{args.model} forward+backward, train mode | {common.describe_machine(device)}\n'
          f'batch {args.batch}, {x.shape[2:]}, {args.repeats} rounds (+{args.warmup} warm-up), '
          f'{watch.wall_s:.1f} s; {common.describe_load(watch.as_dict())}\n'
          f'{"variant":<12}{"reference":<12}{"median ms":>10}{"ratio":>7}{"IQR":>13}'
          f'{"med/med":>8}{"target":>7}{"status":>7}{"GFLOPs":>8}{"params(M)":>10}')
    for name, (_, width, ref) in variants.items():
        ms = [t * 1e3 for t in times[name]]
        # the reference of slim@w is the network it computes: its params are the active ones
        row = dict(variant=name, width=width or float(name.split('@')[1]), reference=ref,
                   median_ms=statistics.median(ms), samples_ms=ms, **info[name],
                   params_active=info[ref or name]['params_stored'])
        cells = '-'.rjust(7) + '-'.rjust(13) + '-'.rjust(8) + '-'.rjust(7) + '-'.rjust(7)
        if ref is not None:
            r = common.paired_ratios(times[name], times[ref])
            target = TARGET_FULL if width == 1.0 else TARGET_WIDTH
            row.update(ratio_per_round=r['per_round'], ratio=r['median'], ratio_q1=r['q1'],
                       ratio_q3=r['q3'], ratio_of_medians=r['of_medians'], target=target,
                       flops_equal_reference=info[name]['flops'] == info[ref]['flops'])
            row['pass'] = row['ratio'] <= target
            cells = (f'{r["median"]:>7.3f}{r["q1"]:>7.3f}-{r["q3"]:.3f}{r["of_medians"]:>8.3f}'
                     f'{target:>7.2f}{"pass" if row["pass"] else "OVER":>7}')
        rows.append(row)
        print(f'{name:<12}{ref or "-":<12}{row["median_ms"]:>10.1f}{cells}'
              f'{row["flops"] / 1e9:>8.3f}{row["params_active"] / 1e6:>10.2f}')
    print('ratio: median over rounds of time(variant) / time(reference); FLOPs: mmengine '
          'FlopAnalyzer, one input; traced slim@w == static@w: '
          f'{all(r.get("flops_equal_reference", True) for r in rows[2:])}; export max |diff|: '
          + ', '.join(f'{w}: {c["max_abs_diff"]:.1e}' for w, c in checks.items()))
    common.save_json(args.out, dict(
        **common.environment('bench_backbones', device, rename=RENAME),
        cudnn_benchmark=torch.backends.cudnn.benchmark if device.type == 'cuda' else None,
        model=args.model, input_shape=list(x.shape),
        step='forward + loss = sum(out.mean()) + backward + zero_grad(set_to_none)',
        args=vars(args), export_checks=checks, **watch.as_dict(), variants=rows,
        all_pass=all(r['pass'] for r in rows if 'pass' in r)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
