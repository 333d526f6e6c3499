"""Speed of the slimmable backbones against their references (forward + backward).

``--model resnet50`` (default): :class:`mutual_mm.models.SlimResNet` against
mmdet's stock :class:`~mmdet.models.backbones.ResNet` (depth 50, input
``batch x 3 x size x size``). ``--model slowonly``: :class:`mutual_mm.models.
SlimResNet3dSlowOnly` against mmaction's stock
:class:`~mmaction.models.backbones.ResNet3dSlowOnly` with the Slow-8x8 R50
arguments of the stock Kinetics config (input ``batch x 3 x frames x size x
size``; CPU defaults batch 1, 8 x 112 x 112, ``--size 224`` for the paper's).

Two comparisons, each a RATIO of times measured side by side in one run:

1. ``slim@1.0`` / ``stock@1.0``: the slim backbone at width 1.0 against the
   stock one with the same weights (target <= 1.03).
2. ``slim@w`` / ``static@w`` for w in ``--widths`` (default 0.75, 0.5, 0.25):
   the slim network run at width ``w`` against
   :func:`mutual_mm.ops.export_static` of it at ``w``, i.e. the plain torch
   network built at that width (target <= 1.10).

One timed step is: ``outs = model(x)``, ``loss = sum(o.mean() for o in outs)``,
``loss.backward()``, ``model.zero_grad()`` (train mode; ResNet-50 with mmdet's
defaults ``out_indices=(0, 1, 2, 3)``, ``norm_eval=False``; SlowOnly with the
stock config's, one output of 2048 channels).  Every round runs each
(reference, variant) pair back to back -- which one goes first alternates, the
order of the pairs rotates -- so that load from other processes hits both alike.
Reported: each variant's median time over the rounds, and per pair the median
over rounds of the per-round ratio (``ratio``, which decides pass/over) and the
ratio of the medians (``med/med``).

Also reported per variant: parameters (stored, and active = those of the
static network at that width) and forward FLOPs of one image counted with
mmengine's ``FlopAnalyzer`` (mmengine convention: one multiply-add = one flop).
The slim model is traced directly; its count must equal the static export's.

Run from the repository root::

    .venv/bin/python benchmarks/bench_backbones.py                 # defaults
    .venv/bin/python benchmarks/bench_backbones.py --repeats 3 --size 160
    .venv/bin/python benchmarks/bench_backbones.py --device cuda --cudnn-benchmark
    .venv/bin/python benchmarks/bench_backbones.py --model slowonly       # 8x112x112
    .venv/bin/python benchmarks/bench_backbones.py --model slowonly --size 224

The script prints a table and writes everything to ``--out`` (JSON).  It never
fails on a ratio: targets are reported as ``pass``/``over``.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from typing import Dict, List, Optional

import torch
from torch import nn

import mutual_mm  # noqa: F401  (repairs the stack, registers modules)
from mmdet.models.backbones import ResNet
from mutual_mm.models import SlimResNet, SlimResNet3dSlowOnly
from mutual_mm.ops import export_static

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


# ----------------------------------------------------------------------- helpers
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', choices=sorted(MODELS), default='resnet50',
                   help='resnet50 (mmdet ResNet) or slowonly (mmaction ResNet3dSlowOnly)')
    p.add_argument('--device', choices=('cpu', 'cuda'),
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--batch', type=int, default=None,
                   help='batch size (default: resnet50 2 on cpu, 32 on cuda; '
                        'slowonly 1 on cpu, 8 on cuda)')
    p.add_argument('--size', type=int, default=None,
                   help='input height = width (default 224; slowonly on cpu: 112)')
    p.add_argument('--frames', type=int, default=8,
                   help='input frames (slowonly only; default 8)')
    p.add_argument('--threads', type=int, default=None,
                   help="torch.set_num_threads (CPU); default: torch's own")
    p.add_argument('--repeats', type=int, default=None,
                   help='timed rounds per variant (default: 10 on cpu, 50 on cuda)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed rounds before timing (default: 2 on cpu, 10 on cuda)')
    p.add_argument('--widths', type=float, nargs='+', default=[0.75, 0.5, 0.25],
                   help='reduced widths compared with their static export')
    p.add_argument('--cudnn-benchmark', action='store_true',
                   help='set torch.backends.cudnn.benchmark = True (cuda only)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None,
                   help='JSON output (default: benchmarks/results/backbones_<device>.json)')
    args = p.parse_args(argv)
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available():
        p.error('--device cuda but torch.cuda.is_available() is False')
    if args.cudnn_benchmark and not cuda:
        p.error('--cudnn-benchmark needs --device cuda')
    slowonly = args.model == 'slowonly'
    if args.batch is None:
        args.batch = (8 if cuda else 1) if slowonly else (32 if cuda else 2)
    if args.size is None:
        args.size = 112 if slowonly and not cuda else 224
    if args.repeats is None:
        args.repeats = 50 if cuda else 10
    if args.warmup is None:
        args.warmup = 10 if cuda else 2
    if args.out is None:
        stem = 'backbones' if args.model == 'resnet50' else f'backbones_{args.model}'
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results',
                                f'{stem}_{args.device}.json')
    for name in ('batch', 'size', 'repeats', 'frames'):
        if getattr(args, name) < 1:
            p.error(f'--{name} must be >= 1')
    if args.warmup < 0:
        p.error('--warmup must be >= 0')
    for w in args.widths:
        if not 0 < w < 1:
            p.error(f'--widths must be in (0, 1), got {w}')
    return args


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _quartiles(xs: List[float]):
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    return tuple(statistics.quantiles(xs, n=4, method='inclusive'))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs (multiply-adds) of ``model(x)`` by mmengine's FlopAnalyzer,
    traced in eval mode (the count does not depend on the mode)."""
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # jit TracerWarnings on int(x.shape[1])
            analyzer = FlopAnalyzer(model, (x, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return int(analyzer.total())
    finally:
        model.train(was_training)


class Variant:
    """One timed configuration: a model (and the slim width to set before each
    step, outside the timed region) and the variant it is compared with."""

    def __init__(self, name: str, model: nn.Module, nominal_width: float,
                 slim: bool = False, reference: Optional[str] = None,
                 target: Optional[float] = None):
        self.name, self.model, self.nominal_width = name, model, nominal_width
        self.width = nominal_width if slim else None
        self.reference, self.target = reference, target
        self.samples_ms: List[float] = []
        self.info: Dict[str, object] = {}

    def prepare(self) -> None:
        if self.width is not None:
            self.model.set_width(self.width)


def as_tuple(outs):
    """Backbone outputs as a tuple (SlowOnly returns one tensor)."""
    return (outs, ) if isinstance(outs, torch.Tensor) else tuple(outs)


def build_backbones(model: str):
    """(stock, slim) backbones with the same weights."""
    if model == 'slowonly':
        from mmaction.models.backbones import ResNet3dSlowOnly
        stock = ResNet3dSlowOnly(**SLOWONLY_ARGS)
        slim = SlimResNet3dSlowOnly(**SLOWONLY_ARGS)
    else:
        stock = ResNet(depth=DEPTH)
        slim = SlimResNet(depth=DEPTH)
    slim.load_state_dict(stock.state_dict(), strict=True)
    return stock, slim


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    outs = as_tuple(model(x))
    loss = sum(o.mean() for o in outs)
    loss.backward()
    model.zero_grad(set_to_none=True)


def timed_step(v: Variant, x: torch.Tensor, device: torch.device) -> float:
    v.prepare()
    sync(device)
    start = time.perf_counter()
    train_step(v.model, x)
    sync(device)
    return (time.perf_counter() - start) * 1e3


# ----------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    logging.getLogger('mmengine').setLevel(logging.ERROR)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)

    # Models: the host library's defaults (see MODELS), train mode.
    stock, slim = build_backbones(args.model)
    stock.to(device).train()
    slim.to(device).train()
    frames = (args.frames, ) if args.model == 'slowonly' else ()
    x = torch.randn(args.batch, 3, *frames, args.size, args.size, device=device)
    x1 = x[:1]

    variants: List[Variant] = [
        Variant('stock@1.0', stock, 1.0),
        Variant('slim@1.0', slim, 1.0, slim=True, reference='stock@1.0',
                target=TARGET_FULL),
    ]
    checks = {}
    for w in args.widths:
        slim.set_width(w)
        static = export_static(slim, x1)  # deep copy; slim itself is unchanged
        static.to(device).train()
        # Sanity: the export computes what the slim network computes at w
        # (eval mode, so the running stats are not touched).
        slim.eval()
        static.eval()
        with torch.no_grad():
            a, b = as_tuple(slim(x1)), as_tuple(static(x1))
        slim.train()
        static.train()
        checks[w] = {
            'out_shapes': [list(t.shape) for t in a],
            'out_channels_at': list(slim.out_channels_at(w)),
            'max_abs_diff': max(float((t - u).abs().max()) for t, u in zip(a, b)),
        }
        variants.append(Variant(f'static@{w:g}', static, w))
        variants.append(Variant(f'slim@{w:g}', slim, w, slim=True,
                                reference=f'static@{w:g}', target=TARGET_WIDTH))
    slim.set_width(1.0)
    by_name = {v.name: v for v in variants}

    # Params and FLOPs (one image at --size).
    flop_notes = []
    for v in variants:
        v.prepare()
        v.info['params_stored'] = n_params(v.model)
        try:
            v.info['flops'] = count_flops(v.model, x1)
            v.info['flops_source'] = 'traced'
        except Exception as e:  # noqa: BLE001  (report, fall back to the export)
            v.info['flops'] = None
            v.info['flops_source'] = f'untraceable: {type(e).__name__}: {e}'
    for v in variants:
        if v.reference is None:
            v.info['params_active'] = v.info['params_stored']
            continue
        ref = by_name[v.reference]
        # The reference of slim@1.0 is the stock net, of slim@w the static export
        # at w: both are the network the slim one computes, so their parameter
        # count is the slim net's active parameter count.
        v.info['params_active'] = ref.info['params_stored']
        if v.info['flops'] is None:
            flop_notes.append(f'FlopAnalyzer could not trace {v.name} '
                              f'({v.info["flops_source"]}); its FLOPs are those of '
                              f'{ref.name}')
            v.info['flops'] = ref.info['flops']
            v.info['flops_source'] = f'from {ref.name}'
        elif ref.info['flops'] is not None and v.info['flops'] != ref.info['flops']:
            flop_notes.append(f'FLOPs mismatch: {v.name} traced {v.info["flops"]} but '
                              f'{ref.name} has {ref.info["flops"]}')
        v.info['flops_equal_reference'] = v.info['flops'] == ref.info['flops']
    slim.set_width(1.0)

    # Timing: warm-up rounds, then timed rounds.  Each reference and the variant
    # compared with it run back to back (which one first alternates every round)
    # and the order of the pairs rotates every round, so that load from other
    # processes hits both members of a pair alike.
    pairs = [(by_name[v.reference], v) for v in variants if v.reference is not None]

    def one_round(r: int, record: bool) -> None:
        gc.collect()
        for k in range(len(pairs)):
            ref, v = pairs[(k + r) % len(pairs)]
            for u in ((ref, v) if r % 2 == 0 else (v, ref)):
                ms = timed_step(u, x, device)
                if record:
                    u.samples_ms.append(ms)

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    for r in range(args.warmup):
        one_round(r, record=False)
    for r in range(args.repeats):
        one_round(r, record=True)
    elapsed_s = time.perf_counter() - t_start
    load_after = os.getloadavg()
    slim.set_width(1.0)

    # Results.
    rows = []
    for v in variants:
        med = statistics.median(v.samples_ms)
        row = {
            'variant': v.name,
            'width': v.nominal_width,
            'reference': v.reference,
            'median_ms': med,
            'min_ms': min(v.samples_ms),
            'max_ms': max(v.samples_ms),
            'samples_ms': v.samples_ms,
            'target': v.target,
            **v.info,
        }
        if v.reference is not None:
            ref = by_name[v.reference]
            # Per-round ratio: the two steps ran back to back under the same load.
            per_round = [a / b for a, b in zip(v.samples_ms, ref.samples_ms)]
            q = _quartiles(per_round)
            row['ratio_per_round'] = per_round
            row['ratio'] = statistics.median(per_round)
            row['ratio_q1'], row['ratio_q3'] = q[0], q[2]
            row['ratio_of_medians'] = med / statistics.median(ref.samples_ms)
            row['pass'] = row['ratio'] <= v.target
        rows.append(row)

    print_table(args, device, rows, flop_notes, checks, elapsed_s, load_before, load_after)

    result = {
        'benchmark': 'bench_backbones',
        'timestamp': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'device': args.device,
        'device_name': device_name(device),
        'torch_version': torch.__version__,
        'mmdet_version': __import__('mmdet').__version__,
        'mmaction_version': __import__('mmaction').__version__,
        'mmengine_version': __import__('mmengine').__version__,
        'python_version': platform.python_version(),
        'num_threads': torch.get_num_threads(),
        'cpu_count': os.cpu_count(),
        'cudnn_benchmark': bool(torch.backends.cudnn.benchmark) if device.type == 'cuda'
        else None,
        'model': MODELS[args.model]['description'],
        'model_key': args.model,
        'input_shape': list(x.shape),
        'step': 'forward + loss = sum(out.mean()) + backward + zero_grad(set_to_none)',
        'batch': args.batch,
        'size': args.size,
        'frames': args.frames if args.model == 'slowonly' else None,
        'repeats': args.repeats,
        'warmup': args.warmup,
        'widths': args.widths,
        'seed': args.seed,
        'flops_convention': 'mmengine FlopAnalyzer, forward of ONE input (image at size x '
                            'size, or clip of frames x size x size), one multiply-add = '
                            'one flop',
        'flop_notes': flop_notes,
        'export_checks': {f'{w:g}': c for w, c in checks.items()},
        'timing_wall_s': elapsed_s,
        'loadavg_before': load_before,
        'loadavg_after': load_after,
        'targets': {'slim@1.0 / stock@1.0': TARGET_FULL, 'slim@w / static@w': TARGET_WIDTH},
        'variants': rows,
        'all_pass': all(r['pass'] for r in rows if 'pass' in r),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'\nwrote {args.out}')
    return 0


def print_table(args, device, rows, flop_notes, checks, elapsed_s, load_before,
                load_after) -> None:
    print(f'{MODELS[args.model]["title"]} forward+backward, train mode | device {args.device} '
          f'({device_name(device)}) | torch {torch.__version__} | '
          f'threads {torch.get_num_threads()}'
          + (f' | cudnn.benchmark {torch.backends.cudnn.benchmark}'
             if device.type == 'cuda' else ''))
    frames = f'{args.frames}x' if args.model == 'slowonly' else ''
    print(f'batch {args.batch}, {frames}{args.size}x{args.size}, {args.repeats} timed rounds '
          f'(+{args.warmup} warm-up), pairs back to back; timing took {elapsed_s:.1f} s; '
          f'load avg {load_before[0]:.2f} -> {load_after[0]:.2f} '
          f'on {os.cpu_count()} CPUs')
    header = (f'{"variant":<12} {"reference":<12} {"median ms":>10} {"ratio":>7} '
              f'{"ratio IQR":>13} {"med/med":>7} {"target":>7} {"status":>6}  '
              f'{"GFLOPs/" + ("clip" if args.model == "slowonly" else "img"):>11} '
              f'{"params(M)":>9}')
    print()
    print(header)
    print('-' * len(header))
    for r in rows:
        paired = 'ratio' in r
        ratio = f'{r["ratio"]:.3f}' if paired else '-'
        iqr = f'{r["ratio_q1"]:.3f}-{r["ratio_q3"]:.3f}' if paired else '-'
        ratio_med = f'{r["ratio_of_medians"]:.3f}' if paired else '-'
        target = f'<={r["target"]:.2f}' if r['target'] is not None else '-'
        status = ('pass' if r['pass'] else 'OVER') if paired else '-'
        flops = f'{r["flops"] / 1e9:.3f}' if r['flops'] is not None else 'n/a'
        if r['flops_source'] != 'traced':
            flops += '*'
        print(f'{r["variant"]:<12} {r["reference"] or "-":<12} {r["median_ms"]:>10.1f} '
              f'{ratio:>7} {iqr:>13} {ratio_med:>7} {target:>7} {status:>6}  {flops:>11} '
              f'{r["params_active"] / 1e6:>9.2f}')
    print()
    print('ratio   = median over rounds of time(variant) / time(reference), the two run back '
          'to back (status uses it);')
    print('          ratio IQR = its quartiles; med/med = median(variant) / median(reference)')
    if device.type == 'cpu' and max(load_before[0], load_after[0]) > 1.5 * os.cpu_count():
        print(f'WARNING: load average above {1.5 * os.cpu_count():g}: other processes '
              'competed for the CPUs, absolute times are inflated and ratios noisier')
    print('GFLOPs = mmengine FlopAnalyzer, forward of one input (1 multiply-add = 1 flop); '
          'params = active parameters (slim nets store the full 1.0 set: '
          f'{rows[1]["params_stored"] / 1e6:.2f} M)')
    all_equal = all(r.get('flops_equal_reference', True) for r in rows)
    print('FLOPs check: traced slim@w == static@w for every width: '
          + ('yes' if all_equal else 'NO'))
    for note in flop_notes:
        print('  note: ' + note)
    print('export check (eval, slim@w vs static@w, max |diff| of outputs): '
          + ', '.join(f'{w:g}: {c["max_abs_diff"]:.1e}' for w, c in checks.items()))


if __name__ == '__main__':
    sys.exit(main())
