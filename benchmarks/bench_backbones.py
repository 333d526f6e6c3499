"""Speed of the slimmable backbones against their references (forward + backward).

``--model resnet50`` (default): ``SlimResNet`` against mmdet's ``ResNet`` (depth
50, mmdet's defaults); ``--model slowonly``: ``SlimResNet3dSlowOnly`` against
mmaction's ``ResNet3dSlowOnly`` with the stock Slow-8x8 R50 config's arguments
(on the CPU batch 1 of 8 x 112 x 112 clips by default). Two ratios of times
measured side by side: ``slim@1.0 / stock@1.0`` (same weights, target <= 1.03)
and, for w in ``--widths``, ``slim@w / static@w`` against ``export_static`` of
the slim network at w (target <= 1.10). A step is forward, ``sum(o.mean())``,
backward, ``zero_grad`` in train mode; each round runs every (reference, variant)
pair back to back (first of the two alternating, pairs rotating). Reported per
pair: the median of the per-round ratios (``ratio``: pass/OVER) and the ratio of
the medians (``med/med``); per variant: median time, active parameters and the
forward FLOPs of one input (mmengine FlopAnalyzer, 1 multiply-add = 1 flop; the
slim model is traced itself and must count what its export counts).

    .venv/bin/python benchmarks/bench_backbones.py                 # defaults
    .venv/bin/python benchmarks/bench_backbones.py --repeats 3 --size 160
    .venv/bin/python benchmarks/bench_backbones.py --device cuda --cudnn-benchmark
    .venv/bin/python benchmarks/bench_backbones.py --model slowonly [--size 224]

Output: a table, and ``--out`` (default
``benchmarks/results/backbones[_slowonly]_<device>.json``).
"""
from __future__ import annotations

import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401  (repairs the stack, registers modules)
from mutual_mm.models import SlimResNet, SlimResNet3dSlowOnly  # noqa: E402
from mutual_mm.ops import export_static  # noqa: E402

TARGET_FULL = 1.03    # slim@1.0 / stock
TARGET_WIDTH = 1.10   # slim@w / static@w
DEPTH = 50
# the backbone of mmaction's slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py
SLOWONLY_ARGS = dict(depth=DEPTH, pretrained=None, lateral=False, conv1_kernel=(1, 7, 7),
                     conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1),
                     norm_eval=False)
MODELS = {
    'resnet50': dict(title=f'ResNet-{DEPTH}',
                     description=f'ResNet-{DEPTH} (mmdet defaults: out_indices=(0, 1, 2, 3), '
                                 'norm_eval=False, train mode)'),
    'slowonly': dict(title=f'SlowOnly R{DEPTH}',
                     description=f'SlowOnly R{DEPTH} (mmaction ResNet3dSlowOnly, Slow-8x8 '
                                 f'config arguments {SLOWONLY_ARGS}, train mode)'),
}
# the keys of this script's earlier results
RENAME = {k: f'{k}_version' for k in common.VERSION_KEYS}


def parse_args(argv=None):
    p = common.arg_parser(__doc__)
    p.add_argument('--model', choices=sorted(MODELS), default='resnet50')
    p.add_argument('--batch', type=int, default=None,
                   help='batch size (default: resnet50 2 on cpu, 32 on cuda; '
                        'slowonly 1 on cpu, 8 on cuda)')
    p.add_argument('--size', type=int, default=None,
                   help='input height = width (default 224; slowonly on cpu: 112)')
    p.add_argument('--frames', type=int, default=8, help='input frames (slowonly only)')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed rounds (default: 10 on cpu, 50 on cuda)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed rounds first (default: 2 on cpu, 10 on cuda)')
    p.add_argument('--widths', type=float, nargs='+', default=[0.75, 0.5, 0.25],
                   help='reduced widths compared with their static export')
    args = p.parse_args(argv)
    slowonly = args.model == 'slowonly'
    common.finish_args(
        p, args, 'backbones_slowonly_{device}' if slowonly else 'backbones_{device}',
        positive=('batch', 'size', 'repeats', 'frames'), non_negative=('warmup', ),
        batch=(8, 1) if slowonly else (32, 2), size=(224, 112 if slowonly else 224),
        repeats=(50, 10), warmup=(10, 2))
    if not all(0 < w < 1 for w in args.widths):
        p.error(f'--widths must be in (0, 1), got {args.widths}')
    return args


# ----------------------------------------------------------------- networks
class Variant:
    """One timed network, the slim width set before each of its steps (outside
    the timed region), and the variant it is compared with."""

    def __init__(self, name: str, model, width: float, slim: bool = False,
                 reference: Optional[str] = None, target: Optional[float] = None):
        self.name, self.model, self.width, self.slim = name, model, width, slim
        self.reference, self.target = reference, target
        self.samples_ms: List[float] = []
        self.info: Dict[str, object] = {}

    def prepare(self) -> None:
        if self.slim:
            self.model.set_width(self.width)


def build_backbones(model: str):
    """(stock, slim) backbones with the same weights."""
    if model == 'slowonly':
        from mmaction.models.backbones import ResNet3dSlowOnly
        stock, slim = ResNet3dSlowOnly(**SLOWONLY_ARGS), SlimResNet3dSlowOnly(**SLOWONLY_ARGS)
    else:
        from mmdet.models.backbones import ResNet
        stock, slim = ResNet(depth=DEPTH), SlimResNet(depth=DEPTH)
    slim.load_state_dict(stock.state_dict(), strict=True)
    return stock, slim


def as_tuple(outs):
    """Backbone outputs as a tuple (SlowOnly returns one tensor)."""
    return (outs, ) if isinstance(outs, torch.Tensor) else tuple(outs)


def export_at(slim, width: float, x1: torch.Tensor):
    """``export_static`` of ``slim`` at ``width`` (a copy), and the check that
    it computes what the slim network does there (in eval mode, so that the
    running statistics stay untouched)."""
    slim.set_width(width)
    static = export_static(slim, x1)
    slim.eval()
    static.eval()
    with torch.no_grad():
        a, b = as_tuple(slim(x1)), as_tuple(static(x1))
    slim.train()
    static.to(x1.device).train()
    return static, dict(out_shapes=[list(t.shape) for t in a],
                        out_channels_at=list(slim.out_channels_at(width)),
                        max_abs_diff=max(float((t - u).abs().max()) for t, u in zip(a, b)))


def build_variants(stock, slim, widths, x1):
    """The variants in pairs (reference first), and the export checks."""
    variants = [Variant('stock@1.0', stock, 1.0),
                Variant('slim@1.0', slim, 1.0, slim=True, reference='stock@1.0',
                        target=TARGET_FULL)]
    checks = {}
    for w in widths:
        static, checks[f'{w:g}'] = export_at(slim, w, x1)
        variants += [Variant(f'static@{w:g}', static, w),
                     Variant(f'slim@{w:g}', slim, w, slim=True, reference=f'static@{w:g}',
                             target=TARGET_WIDTH)]
    slim.set_width(1.0)
    return variants, checks


def count_params_and_flops(variants: List[Variant], x1: torch.Tensor) -> List[str]:
    """Parameters and FLOPs of one input per variant; notes on any slim
    variant whose traced FLOPs differ from its reference's."""
    for v in variants:
        v.prepare()
        v.info.update(params_stored=sum(p.numel() for p in v.model.parameters()),
                      flops=common.count_flops(v.model, x1), flops_source='traced')
    by_name = {v.name: v for v in variants}
    notes = []
    for v in variants:
        ref = by_name.get(v.reference)
        # The reference of slim@1.0 is the stock net, of slim@w the export at w:
        # the network the slim one computes, so its parameters are the active ones.
        v.info['params_active'] = (ref or v).info['params_stored']
        if ref is not None:
            v.info['flops_equal_reference'] = v.info['flops'] == ref.info['flops']
            if not v.info['flops_equal_reference']:
                notes.append(f'FLOPs mismatch: {v.name} traced {v.info["flops"]} but '
                             f'{ref.name} has {ref.info["flops"]}')
    return notes


# ------------------------------------------------------------------- timing
def train_step(model, x: torch.Tensor) -> None:
    loss = sum(o.mean() for o in as_tuple(model(x)))
    loss.backward()
    model.zero_grad(set_to_none=True)


def time_pairs(pairs, x, device, warmup: int, repeats: int) -> common.Watch:
    """Each (reference, variant) pair back to back, the first of the two
    alternating and the order of the pairs rotating every round, so that load
    from other processes hits both members of a pair alike."""

    def one_round(r: int, timed: bool) -> None:
        for ref, v in common.rotated(pairs, r):
            for u in ((ref, v) if r % 2 == 0 else (v, ref)):
                u.prepare()
                seconds, _ = common.clock(lambda: train_step(u.model, x), device)
                if timed:
                    u.samples_ms.append(seconds * 1e3)

    return common.run_rounds(warmup, repeats, one_round)


def result_row(v: Variant, by_name: Dict[str, Variant]) -> dict:
    row = dict(variant=v.name, width=v.width, reference=v.reference,
               median_ms=statistics.median(v.samples_ms), min_ms=min(v.samples_ms),
               max_ms=max(v.samples_ms), samples_ms=v.samples_ms, target=v.target, **v.info)
    if v.reference is not None:
        ratios = common.paired_ratios(v.samples_ms, by_name[v.reference].samples_ms)
        row.update(ratio_per_round=ratios['per_round'], ratio=ratios['median'],
                   ratio_q1=ratios['q1'], ratio_q3=ratios['q3'],
                   ratio_of_medians=ratios['of_medians'])
        row['pass'] = row['ratio'] <= v.target
    return row


# ------------------------------------------------------------------- report
def print_table(args, device, rows, flop_notes, checks, watch: common.Watch) -> None:
    frames = f'{args.frames}x' if args.model == 'slowonly' else ''
    print(f'{MODELS[args.model]["title"]} forward+backward, train mode | '
          f'{common.describe_machine(device)}')
    print(f'batch {args.batch}, {frames}{args.size}x{args.size}, {args.repeats} timed rounds '
          f'(+{args.warmup} warm-up), pairs back to back; timing took {watch.wall_s:.1f} s; '
          + common.describe_load(watch.as_dict()))
    per = 'clip' if args.model == 'slowonly' else 'img'
    header = (f'{"variant":<12} {"reference":<12} {"median ms":>10} {"ratio":>7} '
              f'{"ratio IQR":>13} {"med/med":>7} {"target":>7} {"status":>6}  '
              f'{"GFLOPs/" + per:>11} {"params(M)":>9}')
    print(f'\n{header}\n' + '-' * len(header))
    for r in rows:
        paired = 'ratio' in r
        cells = ([f'{r["ratio"]:.3f}', f'{r["ratio_q1"]:.3f}-{r["ratio_q3"]:.3f}',
                  f'{r["ratio_of_medians"]:.3f}', f'<={r["target"]:.2f}',
                  'pass' if r['pass'] else 'OVER'] if paired else ['-'] * 5)
        print(f'{r["variant"]:<12} {r["reference"] or "-":<12} {r["median_ms"]:>10.1f} '
              f'{cells[0]:>7} {cells[1]:>13} {cells[2]:>7} {cells[3]:>7} {cells[4]:>6}  '
              f'{r["flops"] / 1e9:>11.3f} {r["params_active"] / 1e6:>9.2f}')
    print('\nratio = median over rounds of time(variant) / time(reference), run back to back '
          '(status uses it), IQR its quartiles; med/med = median(variant) / median(reference)')
    print('GFLOPs = mmengine FlopAnalyzer, forward of one input (1 multiply-add = 1 flop); '
          'params = active parameters (slim nets store the full 1.0 set: '
          f'{rows[1]["params_stored"] / 1e6:.2f} M)')
    print('FLOPs check: traced slim@w == static@w for every width: '
          + ('; '.join(flop_notes) or 'yes'))
    print('export check (eval, slim@w vs static@w, max |diff| of outputs): '
          + ', '.join(f'{w}: {c["max_abs_diff"]:.1e}' for w, c in checks.items()))


def result(args, device, x, rows, flop_notes, checks, watch: common.Watch) -> dict:
    return dict(
        **common.environment('bench_backbones', device, rename=RENAME),
        cudnn_benchmark=torch.backends.cudnn.benchmark if device.type == 'cuda' else None,
        model=MODELS[args.model]['description'], model_key=args.model,
        input_shape=list(x.shape),
        step='forward + loss = sum(out.mean()) + backward + zero_grad(set_to_none)',
        batch=args.batch, size=args.size,
        frames=args.frames if args.model == 'slowonly' else None,
        repeats=args.repeats, warmup=args.warmup, widths=args.widths, seed=args.seed,
        flops_convention='mmengine FlopAnalyzer, forward of ONE input (image at size x size, '
                         'or clip of frames x size x size), one multiply-add = one flop',
        flop_notes=flop_notes, export_checks=checks, **watch.as_dict(),
        targets={'slim@1.0 / stock@1.0': TARGET_FULL, 'slim@w / static@w': TARGET_WIDTH},
        variants=rows, all_pass=all(r['pass'] for r in rows if 'pass' in r))


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.start(args)
    stock, slim = build_backbones(args.model)
    stock.to(device).train()
    slim.to(device).train()
    frames = (args.frames, ) if args.model == 'slowonly' else ()
    x = torch.randn(args.batch, 3, *frames, args.size, args.size, device=device)
    variants, checks = build_variants(stock, slim, args.widths, x[:1])
    flop_notes = count_params_and_flops(variants, x[:1])
    by_name = {v.name: v for v in variants}
    pairs = [(by_name[v.reference], v) for v in variants if v.reference is not None]
    watch = time_pairs(pairs, x, device, args.warmup, args.repeats)
    rows = [result_row(v, by_name) for v in variants]
    print_table(args, device, rows, flop_notes, checks, watch)
    common.save_json(args.out, result(args, device, x, rows, flop_notes, checks, watch))
    return 0


if __name__ == '__main__':
    sys.exit(main())
