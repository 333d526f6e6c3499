"""The subnet lookup table: (subnet, FLOPs, params, metric[, latency]),
its Pareto frontier, and "best subnet under a budget" (paper §3.4)."""
import csv
import json
import os.path as osp
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Union

from .subnet import Subnet


@dataclass
class TableRow:
    """One evaluated subnet.

    Attributes:
        subnet: the subnet.
        flops: forward FLOPs of one input at this subnet: of the model as
            deployed (detectors: backbone, neck, RPN and RoI heads on the
            regions the input sends through them), or of backbone + neck
            when the table was built with ``flops_scope='features'``.
        params: parameters used at this subnet.
        metric: the config's own evaluation metric (higher is better).
        latency_ms: median latency on the measuring device, if measured.
        trained: False for a subnet outside what the checkpoint was
            trained on, tabulated only because it was explicitly allowed.
        latency_runtime: what ran for ``latency_ms``: ``'torch'`` (the
            PyTorch model on its device) or ``'onnxruntime'`` (the exported
            subnet in ONNX Runtime, CPU).
        features_flops: FLOPs of backbone + neck alone on the same input
            (the part width and resolution act on).
    """
    subnet: Subnet
    flops: float
    params: float
    metric: float
    latency_ms: Optional[float] = None
    trained: bool = True
    latency_runtime: Optional[str] = None
    features_flops: Optional[float] = None

    def as_dict(self) -> dict:
        out = dict(key=self.subnet.key, **self.subnet.as_dict())
        out.update({k: v for k, v in asdict(self).items() if k != 'subnet'})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> 'TableRow':
        scale = d.get('scale')
        if isinstance(scale, str):  # from CSV
            scale = None if scale in ('', 'None') else json.loads(scale)
        if isinstance(scale, list):
            scale = tuple(scale)
        frames, proposals = (_optional(d, k, int) for k in ('frames', 'proposals'))
        latency, features_flops = (_optional(d, k, float)
                                   for k in ('latency_ms', 'features_flops'))
        trained = d.get('trained', True)
        trained = trained not in (False, 'False', 'false', '0', 0)
        runtime = _optional(d, 'latency_runtime', str)
        return cls(Subnet(float(d['width']), scale, frames, proposals), float(d['flops']),
                   float(d['params']), float(d['metric']), latency, trained, runtime,
                   features_flops)


def _optional(d: dict, key: str, kind):
    """``d[key]`` as ``kind``, None where it is absent or empty (CSV/JSON)."""
    value = d.get(key)
    return None if value in (None, '', 'None') else kind(value)


Table = Union[Sequence[TableRow], str]


COSTS = ('flops', 'latency')


def _cost(cost: str):
    if cost not in COSTS:
        raise ValueError(f'cost={cost!r}; valid: {", ".join(map(repr, COSTS))}')
    return (lambda r: r.flops) if cost == 'flops' else (lambda r: r.latency_ms)


def pareto_frontier(rows: Sequence[TableRow], cost: str = 'flops') -> List[TableRow]:
    """The rows no other row beats: sorted by cost (FLOPs, or latency), each
    with a higher metric than every cheaper row (the best subnet for each
    budget)."""
    key = _cost(cost)
    if cost == 'latency' and any(r.latency_ms is None for r in rows):
        raise ValueError('pareto_frontier(cost="latency"): the table has no latencies; '
                         'build it with --latency')
    frontier, best = [], float('-inf')
    for row in sorted(rows, key=lambda r: (key(r), -r.metric)):
        if row.metric > best:
            frontier.append(row)
            best = row.metric
    return frontier


def load_table(path: str) -> List[TableRow]:
    if path.endswith('.json'):
        with open(path) as f:
            return [TableRow.from_dict(d) for d in json.load(f)['rows']]
    with open(path, newline='') as f:
        return [TableRow.from_dict(d) for d in csv.DictReader(f)]


def save_table(rows: Sequence[TableRow], prefix: str, metric_name: str = 'metric') -> dict:
    """Write ``prefix.csv`` and ``prefix.json`` (rows and frontier)."""
    dicts = [r.as_dict() for r in rows]
    fields = list(dicts[0])
    with open(prefix + '.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for d in dicts:
            writer.writerow({**d, 'scale': json.dumps(d['scale'])})
    frontier = [r.subnet.key for r in pareto_frontier(rows)]
    with open(prefix + '.json', 'w') as f:
        json.dump(dict(metric=metric_name, rows=dicts, pareto=frontier), f, indent=1)
    return dict(csv=prefix + '.csv', json=prefix + '.json')


def select_subnet(table: Table, max_flops: Optional[float] = None,
                  max_latency_ms: Optional[float] = None) -> TableRow:
    """The best-metric subnet within the budget (ties: fewer FLOPs).

    Args:
        table: rows, or the path of a table written by :func:`save_table`.
        max_flops: FLOPs budget per input.
        max_latency_ms: latency budget (needs a table with latencies).

    Raises:
        ValueError: a budget that is not positive; nothing fits (the message
            gives the cheapest subnets).
    """
    for name, budget in (('max_flops', max_flops), ('max_latency_ms', max_latency_ms)):
        if budget is not None and not budget > 0:
            raise ValueError(f'select_subnet: {name}={budget!r}; valid: a positive number '
                             '(or None for no limit)')
    rows = load_table(table) if isinstance(table, str) else list(table)
    if not rows:
        raise ValueError('select_subnet: the table is empty')
    if max_latency_ms is not None and any(r.latency_ms is None for r in rows):
        raise ValueError('select_subnet: max_latency_ms given but the table has no '
                         'latencies; build it with --latency')
    fits = [r for r in rows
            if (max_flops is None or r.flops <= max_flops)
            and (max_latency_ms is None or r.latency_ms <= max_latency_ms)]
    if not fits:
        cheapest = min(rows, key=lambda r: r.flops)
        fastest = min(rows, key=lambda r: r.latency_ms or 0)
        raise ValueError(
            f'select_subnet: no subnet fits max_flops={max_flops} '
            f'max_latency_ms={max_latency_ms}; the cheapest is {cheapest.subnet.key} '
            f'({cheapest.flops:.4g} FLOPs'
            + (f', fastest {fastest.subnet.key} at {fastest.latency_ms:.3g} ms)'
               if max_latency_ms is not None else ')'))
    return max(fits, key=lambda r: (r.metric, -r.flops))


def plot_table(rows: Sequence[TableRow], path: str, metric_name: str = 'metric',
               title: str = '', flops_label: str = 'GFLOPs', cost: str = 'flops') -> str:
    """Metric vs FLOPs (or latency: ``cost='latency'``) for every subnet, the
    Pareto frontier drawn as segments colored by the input resolution it uses
    (as the paper's Fig. 9); a detector's proposal counts as marker shapes."""
    key = _cost(cost)
    x_of = (lambda r: r.flops / 1e9) if cost == 'flops' else key
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    scales = sorted({_scale_label(r) for r in rows}, key=_label_order)
    colors = {s: plt.cm.viridis(i / max(1, len(scales) - 1)) for i, s in enumerate(scales)}
    proposals = sorted({r.subnet.proposals for r in rows}, key=lambda p: -(p or 0))
    markers = dict(zip(proposals, 'os^Dvx'))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for s in scales:
        for p in proposals:
            pts = [r for r in rows if _scale_label(r) == s and r.subnet.proposals == p]
            ax.scatter([x_of(r) for r in pts], [r.metric for r in pts], s=14,
                       color=colors[s], alpha=0.4, marker=markers.get(p, 'o'))
    frontier = pareto_frontier(rows, cost)
    for a, b in zip(frontier, frontier[1:]):
        ax.plot([x_of(a), x_of(b)], [a.metric, b.metric], lw=2.2,
                color=colors[_scale_label(b)])
    for r in frontier:
        ax.scatter([x_of(r)], [r.metric], s=30, color=colors[_scale_label(r)], zorder=3,
                   marker=markers.get(r.subnet.proposals, 'o'))
    for s in scales:
        ax.plot([], [], color=colors[s], lw=2.2, label=f'resolution {s}')
    if len(proposals) > 1:
        for p in proposals:
            ax.scatter([], [], color='grey', marker=markers.get(p, 'o'),
                       label=f'{p} proposals')
    runtime = next((r.latency_runtime for r in rows if r.latency_runtime), None)
    ax.set_xlabel(flops_label if cost == 'flops' else f'latency (ms, {runtime or "?"})')
    ax.set_ylabel(metric_name)
    ax.set_title(title or f'{metric_name} vs {"FLOPs" if cost == "flops" else "latency"} '
                 '(frontier colored by resolution)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _scale_label(row: TableRow) -> str:
    s = row.subnet.scale
    label = 'native' if s is None else (f'{s[0]}x{s[1]}' if isinstance(s, tuple) else str(s))
    return label if row.subnet.frames is None else f'{label}/{row.subnet.frames}f'


def _label_order(label: str):
    digits = ''.join(c if c.isdigit() else ' ' for c in label).split()
    return [int(d) for d in digits] or [0]
