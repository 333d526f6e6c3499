"""Which sub-networks train together in one iteration (the paper's sandwich)."""
import random
from dataclasses import dataclass
from typing import List, Optional

from ..ops import Width, WidthGrid


@dataclass(frozen=True)
class Member:
    """One member of an iteration's cohort.

    Attributes:
        name: ``'full'``, ``'min'`` or ``'rand<i>'`` (log prefix).
        width: its width multiplier (on the grid), or its stage widths.
        view: index of the MultiResolution view it is fed.
    """
    name: str
    width: Width
    view: int


def sample_cohort(grid: WidthGrid, num_views: int, num_random: int,
                  rng: random.Random, num_stages: Optional[int] = None) -> List[Member]:
    """The full network (max width, view 0 = highest resolution), the smallest
    width (omitted when it equals the max) and ``num_random`` widths sampled
    uniformly on ``grid``; every sub-network gets one view drawn uniformly from
    all views. Draws from ``rng`` in a fixed order, so a restored ``rng`` state
    reproduces the cohorts.

    ``num_stages``: the random members draw one width per stage (BigNAS's
    non-uniform sandwich; the full network and the smallest stay uniform, the
    bounds every stage-width subnet lies between). None: one width for all."""
    cohort = [Member('full', grid.max, 0)]
    if grid.min < grid.max:
        cohort.append(Member('min', grid.min, rng.randrange(num_views)))
    for i in range(num_random):
        width = grid.sample(rng) if num_stages is None else \
            grid.sample_stages(rng, num_stages)
        cohort.append(Member(f'rand{i}', width, rng.randrange(num_views)))
    return cohort
