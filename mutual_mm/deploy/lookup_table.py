"""The subnet lookup table: (subnet, FLOPs, params, metric[, latency]),
its Pareto frontier, and "best subnet under a budget" (paper §3.4)."""
import csv
import json
import math
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Union

from ..fileio import atomic_path
from ..ops import normalize_width, parse_width
from .subnet import Subnet

#: the precisions a row may have (the runtimes': :mod:`.runtimes`)
PRECISIONS = ('fp32', 'int8')


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
        latency_threads: CPU threads ``latency_ms`` was measured with.
        precision: what the runtime computed in: ``'fp32'`` or ``'int8'``
            (``onnxruntime-int8``; its metric measured in that runtime). A
            table may hold one subnet at several precisions; a table written
            before this column existed loads as ``'fp32'``.
    """
    subnet: Subnet
    flops: float
    params: float
    metric: float
    latency_ms: Optional[float] = None
    trained: bool = True
    latency_runtime: Optional[str] = None
    features_flops: Optional[float] = None
    latency_threads: Optional[int] = None
    precision: str = 'fp32'

    @property
    def key(self) -> str:
        """The row's name: the subnet's key, with the precision unless fp32
        (``w0.5_s160``, ``w0.5_s160_int8``)."""
        return self.subnet.key if self.precision == 'fp32' else \
            f'{self.subnet.key}_{self.precision}'

    def as_dict(self) -> dict:
        out = dict(key=self.key, **self.subnet.as_dict())
        out.update({k: v for k, v in asdict(self).items() if k != 'subnet'})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> 'TableRow':
        """A row from a CSV or JSON table; ``ValueError`` naming the column
        that is missing or unreadable."""
        scale = _column(d, 'scale', _parse_scale, required=False)
        frames, proposals = (_column(d, k, int, required=False)
                             for k in ('frames', 'proposals'))
        latency, features_flops = (_column(d, k, float, required=False)
                                   for k in ('latency_ms', 'features_flops'))
        trained = d.get('trained', True)
        trained = trained not in (False, 'False', 'false', '0', 0)
        runtime = _column(d, 'latency_runtime', str, required=False)
        threads = _column(d, 'latency_threads', int, required=False)
        precision = _column(d, 'precision', str, required=False) or 'fp32'
        if precision not in PRECISIONS:
            raise ValueError(f'column \'precision\': {precision!r}; valid: '
                             f'{", ".join(map(repr, PRECISIONS))}')
        width = _column(d, 'width', _parse_width)
        flops, params, metric = (_column(d, k, float) for k in ('flops', 'params', 'metric'))
        return cls(Subnet(width, scale, frames, proposals), flops, params, metric, latency,
                   trained, runtime, features_flops, threads, precision)

    def usable(self) -> bool:
        """Whether the row's metric and costs are all finite numbers (a row
        whose evaluation or measurement failed is never chosen)."""
        values = [self.metric, self.flops] + \
            ([self.latency_ms] if self.latency_ms is not None else [])
        return all(math.isfinite(v) for v in values)


def _parse_width(value):
    """A float, stage widths as a list (JSON) or as its CSV text ``[0.25, 0.5]``."""
    if isinstance(value, str) and value.startswith('['):
        value = json.loads(value)
    if isinstance(value, str):
        return parse_width(value)
    return normalize_width(value)


def _parse_scale(value):
    if isinstance(value, str):  # from CSV
        value = json.loads(value)
    return tuple(value) if isinstance(value, list) else value


def _column(d: dict, key: str, kind, required: bool = True):
    """``d[key]`` as ``kind``; None where an optional column is absent or
    empty (CSV/JSON); ``ValueError`` naming the column otherwise."""
    value = d.get(key)
    if value in (None, '', 'None'):
        if required:
            raise ValueError(f'column {key!r} is missing or empty' if key not in d else
                             f'column {key!r} is empty')
        return None
    try:
        return kind(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f'column {key!r}: cannot read {value!r} ({err})') from None


Table = Union[Sequence[TableRow], str]


COSTS = ('flops', 'latency')


def _cost(cost: str):
    if cost not in COSTS:
        raise ValueError(f'cost={cost!r}; valid: {", ".join(map(repr, COSTS))}')
    return (lambda r: r.flops) if cost == 'flops' else (lambda r: r.latency_ms)


def candidates(rows: Sequence[TableRow], include_untrained: bool = False,
               precisions: Optional[Sequence[str]] = None) -> List[TableRow]:
    """The rows a budget may choose, by the one rule :func:`pareto_frontier`
    and :func:`select_subnet` share: a finite metric and finite costs
    (:meth:`TableRow.usable`), trained (rows tabulated with
    ``allow_untrained`` only when ``include_untrained``) and, when
    ``precisions`` is given, of one of them (None: every precision)."""
    return [r for r in rows if r.usable() and (r.trained or include_untrained)
            and (precisions is None or r.precision in precisions)]


def _check_precisions(rows: Sequence[TableRow], precisions, caller: str):
    """``precisions`` as a tuple (None stays None); ``ValueError`` naming the
    ones the table has when one is not among them."""
    if precisions is None:
        return None
    precisions = (precisions, ) if isinstance(precisions, str) else tuple(precisions)
    present = sorted({r.precision for r in rows})
    absent = [p for p in precisions if p not in present]
    if absent:
        raise ValueError(f'{caller}: precision {", ".join(map(repr, absent))} is not in '
                         f'the table; it has {", ".join(map(repr, present))}')
    return precisions


def pareto_frontier(rows: Sequence[TableRow], cost: str = 'flops',
                    include_untrained: bool = False,
                    precisions: Optional[Sequence[str]] = None) -> List[TableRow]:
    """The rows no other row beats: sorted by cost (FLOPs, or latency), each
    with a higher metric than every cheaper row (the best subnet for each
    budget), among the :func:`candidates` (every precision unless
    ``precisions`` names some)."""
    key = _cost(cost)
    precisions = _check_precisions(rows, precisions, 'pareto_frontier')
    if cost == 'latency' and any(r.latency_ms is None for r in rows):
        raise ValueError('pareto_frontier(cost="latency"): the table has no latencies; '
                         'build it with --latency')
    frontier, best = [], float('-inf')
    for row in sorted(candidates(rows, include_untrained, precisions),
                      key=lambda r: (key(r), -r.metric)):
        if row.metric > best:
            frontier.append(row)
            best = row.metric
    return frontier


def load_table(path: str) -> List[TableRow]:
    """The rows of a table written by :func:`save_table` (``.csv`` or
    ``.json``); ``ValueError`` naming the file, the row and the column of
    anything unreadable."""
    check_file = 'a table written by tools/build_lookup_table.py'
    try:
        if path.endswith('.json'):
            with open(path) as f:
                dicts = json.load(f)['rows']
        else:
            with open(path, newline='') as f:
                dicts = list(csv.DictReader(f))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f'{path} is not {check_file}: {err!r}') from None
    rows = []
    for number, d in enumerate(dicts, start=1):
        try:
            rows.append(TableRow.from_dict(d))
        except ValueError as err:
            raise ValueError(f'{path}, row {number} ({d.get("key", "no key")}): {err}') \
                from None
    return rows


def save_table(rows: Sequence[TableRow], prefix: str, metric_name: str = 'metric') -> dict:
    """Write ``prefix.csv`` and ``prefix.json`` (rows and frontier), each to a
    temporary name first, both moved into place once both are complete."""
    dicts = [r.as_dict() for r in rows]
    keys = [d['key'] for d in dicts]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f'save_table: rows {", ".join(twice[:5])} appear twice (one row '
                         'per subnet and precision)')
    frontier = [r.key for r in pareto_frontier(rows)]
    paths = dict(csv=prefix + '.csv', json=prefix + '.json')
    with atomic_path(paths['csv']) as csv_tmp, atomic_path(paths['json']) as json_tmp:
        with open(csv_tmp, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(dicts[0]))
            writer.writeheader()
            for d in dicts:
                writer.writerow({**d, 'scale': json.dumps(d['scale'])})
        with open(json_tmp, 'w') as f:
            json.dump(dict(metric=metric_name, rows=dicts, pareto=frontier), f, indent=1)
    return paths


def select_subnet(table: Table, max_flops: Optional[float] = None,
                  max_latency_ms: Optional[float] = None,
                  include_untrained: bool = False,
                  precisions: Optional[Sequence[str]] = None) -> TableRow:
    """The best-metric subnet within the budget (ties: fewer FLOPs), among
    the :func:`candidates` (the rows :func:`pareto_frontier` draws from).

    Args:
        table: rows, or the path of a table written by :func:`save_table`.
        max_flops: FLOPs budget per input.
        max_latency_ms: latency budget (needs a table with latencies).
        include_untrained: also choose rows marked ``trained=False``.
        precisions: choose only rows of these precisions (``'fp32'``,
            ``'int8'``); None: across every precision the table holds (a
            subnet's INT8 row competes with its fp32 row on its own metric
            and latency).

    Raises:
        ValueError: a budget that is not positive; nothing fits (the message
            gives the cheapest subnets and the rows left out).
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
    precisions = _check_precisions(rows, precisions, 'select_subnet')
    pool = candidates(rows, include_untrained, precisions)
    left_out = _left_out([r for r in rows if precisions is None or r.precision in precisions],
                         pool)
    fits = [r for r in pool
            if (max_flops is None or r.flops <= max_flops)
            and (max_latency_ms is None or r.latency_ms <= max_latency_ms)]
    if not fits:
        if not pool:
            raise ValueError(f'select_subnet: no row can be chosen ({left_out})')
        cheapest = min(pool, key=lambda r: r.flops)
        fastest = min(pool, key=lambda r: r.latency_ms or 0)
        raise ValueError(
            f'select_subnet: no subnet fits max_flops={max_flops} '
            f'max_latency_ms={max_latency_ms}; the cheapest is {cheapest.key} '
            f'({cheapest.flops:.4g} FLOPs'
            + (f', fastest {fastest.key} at {fastest.latency_ms:.3g} ms)'
               if max_latency_ms is not None else ')')
            + (f'; {left_out}' if left_out else ''))
    return max(fits, key=lambda r: (r.metric, -r.flops))


def _left_out(rows: Sequence[TableRow], pool: Sequence[TableRow]) -> str:
    """Which ``rows`` are not in ``pool`` (their :func:`candidates`), and why
    (empty: none)."""
    kept = set(map(id, pool))
    dropped = [r for r in rows if id(r) not in kept]
    broken = [r.key for r in dropped if not r.usable()]
    untrained = [r.key for r in dropped if r.usable()]  # the only other reason
    parts = []
    if broken:
        parts.append(f'left out for a non-finite metric or cost: {", ".join(broken[:5])}'
                     + (' ...' if len(broken) > 5 else ''))
    if untrained:
        parts.append(f'left out as untrained (include_untrained=True to allow): '
                     f'{", ".join(untrained[:5])}' + (' ...' if len(untrained) > 5 else ''))
    return '; '.join(parts)


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
    precisions = sorted({r.precision for r in rows})
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for s in scales:
        for p in proposals:
            for precision in precisions:  # INT8 rows hollow
                pts = [r for r in rows if _scale_label(r) == s and r.subnet.proposals == p
                       and r.precision == precision]
                ax.scatter([x_of(r) for r in pts], [r.metric for r in pts], s=14,
                           alpha=0.4, marker=markers.get(p, 'o'),
                           **_colored(colors[s], precision))
    frontier = pareto_frontier(rows, cost)
    for a, b in zip(frontier, frontier[1:]):
        ax.plot([x_of(a), x_of(b)], [a.metric, b.metric], lw=2.2,
                color=colors[_scale_label(b)])
    for r in frontier:
        ax.scatter([x_of(r)], [r.metric], s=30, zorder=3,
                   marker=markers.get(r.subnet.proposals, 'o'),
                   **_colored(colors[_scale_label(r)], r.precision))
    for s in scales:
        ax.plot([], [], color=colors[s], lw=2.2, label=f'resolution {s}')
    if len(proposals) > 1:
        for p in proposals:
            ax.scatter([], [], color='grey', marker=markers.get(p, 'o'),
                       label=f'{p} proposals')
    if len(precisions) > 1:
        for precision in precisions:
            ax.scatter([], [], label=precision, **_colored('grey', precision))
    runtime = ', '.join(dict.fromkeys(r.latency_runtime for r in rows if r.latency_runtime))
    ax.set_xlabel(flops_label if cost == 'flops' else f'latency (ms, {runtime or "?"})')
    ax.set_ylabel(metric_name)
    ax.set_title(title or f'{metric_name} vs {"FLOPs" if cost == "flops" else "latency"} '
                 '(frontier colored by resolution)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def _colored(color, precision: str) -> dict:
    """Marker colors of a row: filled for fp32, the outline only for INT8."""
    return dict(color=color) if precision == 'fp32' else \
        dict(facecolors='none', edgecolors=color)


def _scale_label(row: TableRow) -> str:
    s = row.subnet.scale
    label = 'native' if s is None else (f'{s[0]}x{s[1]}' if isinstance(s, tuple) else str(s))
    return label if row.subnet.frames is None else f'{label}/{row.subnet.frames}f'


def _label_order(label: str):
    digits = ''.join(c if c.isdigit() else ' ' for c in label).split()
    return [int(d) for d in digits] or [0]
