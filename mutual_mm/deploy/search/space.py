"""What the search walks: the search grid of stage widths x the trained input
views, and the greedy walk itself (pure logic: no model, no data).

Why greedy, as AutoSlim (Yu & Huang 2019, "AutoSlim: Towards One-Shot
Architecture Search for Channel Numbers"), extended with the input view: per
view (resolution, frames) the walk starts at the full width, and each step
tries every subnet that lowers ONE stage by one grid step and moves to the one
that loses the least held-out score per unit of cost saved. One walk passes
every budget on its way down, so one pass answers all budgets; its cost is
known before it starts (at most ``stages x (grid steps) x stages`` evaluations
per view, :func:`evaluation_bound`); and it is deterministic (ties go to the
earlier stage), so an interrupted search replays the same steps from its cache
of evaluated subnets and only evaluates what it had not reached.
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

from ...ops import WidthGrid, normalize_width
from ..subnet import Subnet

_TOL = 1e-6


def search_grid(grid: WidthGrid, search_step: Optional[float] = None) -> List[float]:
    """The widths the search moves on, ascending: ``grid``'s widths subsampled
    to ``search_step`` from the largest down, the smallest always kept.

    Raises:
        ValueError: ``search_step`` not a positive multiple of the grid's step
            (the message names both and the valid steps).
    """
    widths = sorted(grid.widths)
    if search_step is None:
        return widths
    ratio = float(search_step) / grid.step
    if not (search_step > 0 and abs(ratio - round(ratio)) < 1e-6 and round(ratio) >= 1):
        valid = ', '.join(f'{grid.step * k:g}' for k in range(1, max(2, len(widths))))
        raise ValueError(f'--search-step {search_step!r} is not a multiple of the trained '
                         f'width grid\'s step {grid.step:g} ({grid}); valid: {valid}')
    k = int(round(ratio))
    down = sorted(widths, reverse=True)
    picked = set(down[::k]) | {widths[0], widths[-1]}
    return sorted(picked)


def evaluation_bound(num_stages: int, num_widths: int, num_views: int) -> int:
    """The most evaluations a search can make: per view, every uniform width,
    and a walk of at most ``stages x (widths - 1)`` steps of at most ``stages``
    candidates each."""
    return num_views * (num_widths + num_stages * num_stages * (num_widths - 1))


View = Tuple[object, Optional[int]]  # (scale, frames)


def uniform_subnets(widths: Sequence[float], views: Sequence[View]) -> List[Subnet]:
    return [Subnet(w, scale, frames) for scale, frames in views for w in widths]


def lower_one_stage(widths: Sequence[float], stage_widths: Tuple[float, ...]
                    ) -> List[Tuple[int, Tuple[float, ...]]]:
    """``(stage, stage widths)`` of each neighbour with one stage one grid step
    lower, in stage order."""
    out = []
    for i, w in enumerate(stage_widths):
        pos = _index(widths, w)
        if pos > 0:
            out.append((i, stage_widths[:i] + (widths[pos - 1],) + stage_widths[i + 1:]))
    return out


def _index(widths: Sequence[float], w: float) -> int:
    return next(i for i, g in enumerate(widths) if abs(g - w) < _TOL)


def drop_per_cost(current: dict, candidate: dict, cost: str, score: str = 'score') -> float:
    """Held-out score lost per unit of ``cost`` saved moving from ``current``
    to ``candidate`` (records with ``score`` and ``cost`` keys); a move that
    saves nothing ranks last unless it also loses nothing."""
    drop = current[score] - candidate[score]
    saved = current[cost] - candidate[cost]
    if saved > 0:
        return drop / saved
    return -math.inf if drop < 0 else math.inf


def greedy_walk(widths: Sequence[float], num_stages: int, view: View,
                evaluate: Callable[[Subnet], dict], cost: str,
                done: Callable[[dict], bool]) -> List[str]:
    """One view's walk: from the full width, lower one stage per step (the
    candidate of least :func:`drop_per_cost`) until ``done(record)`` (its cost
    is below every budget) or every stage is at the smallest width.

    Args:
        widths: the search grid, ascending.
        evaluate: a subnet's record (``score``, the cost keys); the caller
            caches it.
        cost: the record key the walk trades score against.

    Returns:
        The keys of the subnets the walk stood on, in order.
    """
    scale, frames = view
    here = tuple([widths[-1]] * num_stages)
    record = evaluate(Subnet(normalize_width(here), scale, frames))
    path = [record['key']]
    while not done(record):
        moves = lower_one_stage(widths, here)
        if not moves:
            break
        tried = [(drop_per_cost(record, evaluate(Subnet(normalize_width(w), scale, frames)),
                                cost), i, w) for i, w in moves]
        _, _, here = min(tried, key=lambda t: (t[0], t[1]))
        record = evaluate(Subnet(normalize_width(here), scale, frames))  # cached
        path.append(record['key'])
    return path


def best_under(records: Sequence[dict], cost: str, budget: float) -> Optional[dict]:
    """The record of best score whose ``cost`` is at most ``budget`` (ties: the
    cheaper, then the key); None when none fits."""
    fits = [r for r in records if r.get(cost) is not None and r[cost] <= budget]
    if not fits:
        return None
    return min(fits, key=lambda r: (-r['score'], r[cost], r['key']))
