"""Channel arithmetic shared by every slimmable layer.

All slim layers turn a width multiplier into a channel count with the single
rule in :func:`active_channels`.  Because the rule depends only on the full
channel count and the width, two layers with the same full channel count
(the two branches of a residual add, a depthwise conv and the conv feeding
it) always agree on their active channel count at a given width.
"""
from __future__ import annotations

import math
import random
from typing import Optional, Sequence, Tuple, Union

# Two widths closer than this are the same width (grid values are rounded to
# 6 decimals, user input such as 0.1 + 0.2 is not).
_WIDTH_TOL = 1e-6


def make_divisible(value: float, divisor: int = 8,
                   min_value: Optional[int] = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``.

    This is the rule of MobileNet / US-Nets: round half up to a multiple of
    ``divisor``, never go below ``min_value`` (default ``divisor``) and never
    round down by more than 10 %.

    Args:
        value: the exact (fractional) channel count.
        divisor: the result is a multiple of this (hardware friendly sizes).
        min_value: lower bound of the result; ``None`` (or 0) means
            ``divisor``.
    """
    if divisor <= 0:
        raise ValueError(f'divisor must be positive, got {divisor}')
    new = max(min_value or divisor, int(value + divisor / 2) // divisor * divisor)
    # Do not let rounding down remove more than 10 % of the channels.
    if new < 0.9 * value:
        new += divisor
    return int(new)


def active_channels(full_channels: int, width: float, divisor: int = 8) -> int:
    """Number of channels a layer with ``full_channels`` uses at ``width``.

    ``full_channels`` at width 1.0 (exactly, so layers whose channel count
    is not a multiple of ``divisor`` such as a 3-channel stem are untouched),
    otherwise ``make_divisible(full_channels * width, divisor)`` capped at
    ``full_channels``.

    Args:
        full_channels: channel count of the full (width 1.0) layer.
        width: width multiplier, ``> 0``; values above 1 are capped.
        divisor: see :func:`make_divisible`.
    """
    if full_channels <= 0:
        raise ValueError(f'full_channels must be positive, got {full_channels}')
    if not width > 0:
        raise ValueError(f'width must be positive, got {width}')
    if width == 1.0:
        return int(full_channels)
    return min(int(full_channels), make_divisible(full_channels * width, divisor))


def _fmt(value: float) -> str:
    return str(round(float(value), 6))


#: a subnet's width: one multiplier for every layer, or one per backbone stage
#: (stage widths, in the backbone's :meth:`width_stages` order)
Width = Union[float, Tuple[float, ...]]


def normalize_width(width) -> Width:
    """A width as the package keeps it: a float rounded to 6 decimals, or a
    tuple of them (stage widths). Stage widths that are all equal are the
    uniform width (``(0.5, 0.5, 0.5)`` is ``0.5``): the uniform subnet is the
    special case of stage widths, and has one name.

    Raises:
        ValueError: a value that is not a number, or an empty sequence.
    """
    if isinstance(width, str):
        width = parse_width(width)
    if isinstance(width, (list, tuple)):
        if not width:
            raise ValueError('stage widths: got an empty sequence; valid: one width '
                             'per backbone stage, or one number for all')
        widths = tuple(round(_number(w), 6) for w in width)
        return widths[0] if len(set(widths)) == 1 else widths
    return round(_number(width), 6)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f'width {value!r} is not a number') from None


def is_stage_widths(width) -> bool:
    """Whether ``width`` (normalized) gives one width per stage."""
    return isinstance(width, tuple)


def width_str(width: Width) -> str:
    """``'0.5'``, or stage widths joined by ``-``: ``'0.25-0.5-1'`` (what
    subnet keys and the tools' ``--widths`` use)."""
    width = normalize_width(width)
    if is_stage_widths(width):
        return '-'.join(f'{w:g}' for w in width)
    return f'{width:g}'


def parse_width(text: str) -> Width:
    """The inverse of :func:`width_str`: ``'0.5'`` or ``'0.25-0.5-1'``."""
    parts = str(text).strip().split('-')
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f'width {text!r}: valid: a number such as 0.5, or one number '
                         'per backbone stage joined by "-", such as 0.25-0.5-1-1-1-1'
                         ) from None
    return normalize_width(values if len(values) > 1 else values[0])


def mean_width(width: Width) -> float:
    """One number for a width (the mean of stage widths): what logs plot."""
    width = normalize_width(width)
    return sum(width) / len(width) if is_stage_widths(width) else width


class WidthGrid:
    """The discrete set of widths a slimmable network is trained and run at.

    Why a grid and not a continuous range: every distinct width gives every
    slim conv a new weight/input shape.  With
    ``torch.backends.cudnn.benchmark = True`` cuDNN re-runs its algorithm
    benchmark for every new shape, so sampling continuous random widths
    benchmarks at (almost) every iteration -- measured on an H100, one
    MutualNet training step took 142x the time of a plain step; with widths
    on a 0.05 grid it took 3.5x.  Keeping widths on a grid bounds the number
    of distinct shapes, so the benchmark cache warms up after a few
    iterations.

    No defaults: a grid is what a training run chose (``MutualLearningHook``'s
    arguments hold the defaults, in one place), or what a checkpoint records.

    Args:
        width_range: ``(lo, hi)`` with ``0 < lo <= hi <= 1.0``.
        step: grid spacing, ``> 0``.  The grid is ``lo, lo + step, ...`` up
            to ``hi``; ``hi`` is always included, even when ``hi - lo`` is
            not a multiple of ``step``.

    Attributes:
        widths: sorted tuple of grid widths, rounded to 6 decimals.
        min, max: the smallest and largest grid width (``lo`` and ``hi``).
    """

    def __init__(self, width_range: Sequence[float], step: float) -> None:
        try:
            lo, hi = (float(v) for v in width_range)
        except (TypeError, ValueError):
            raise ValueError(
                f'width_range must be a pair (lo, hi) of numbers, got {width_range!r}'
            ) from None
        step = float(step)
        if not 0 < lo <= hi <= 1.0:
            raise ValueError(
                f'width_range must satisfy 0 < lo <= hi <= 1.0, got lo={lo}, hi={hi}')
        if not step > 0 or math.isinf(step):
            raise ValueError(f'step must be a positive number, got {step}')
        self.lo, self.hi, self.step = round(lo, 6), round(hi, 6), step

        # Count steps with a small tolerance so that e.g. (1.0 - 0.25) / 0.05
        # = 14.999999... still gives 15 steps.
        n_steps = int(math.floor((hi - lo) / step + 1e-9))
        widths = {round(lo + i * step, 6) for i in range(n_steps + 1)}
        widths = {w for w in widths if w <= self.hi}
        widths.add(self.hi)
        self.widths: Tuple[float, ...] = tuple(sorted(widths))

    @property
    def min(self) -> float:
        return self.widths[0]

    @property
    def max(self) -> float:
        return self.widths[-1]

    def __len__(self) -> int:
        return len(self.widths)

    def __iter__(self):
        return iter(self.widths)

    def __contains__(self, width) -> bool:
        try:
            self.validate(width)
        except (ValueError, TypeError):
            return False
        return True

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(width_range=({_fmt(self.lo)}, '
                f'{_fmt(self.hi)}), step={_fmt(self.step)})')

    def validate(self, width: Width) -> Width:
        """Return the grid value equal to ``width`` (tolerance 1e-6); stage
        widths: each one's.

        Raises:
            ValueError: ``width`` is not on the grid; the message names the
                width, the range, the step and the valid widths.
        """
        width = normalize_width(width)
        if is_stage_widths(width):
            return tuple(self.validate(w) for w in width)
        w = float(width)
        for grid_w in self.widths:
            if abs(grid_w - w) <= _WIDTH_TOL:
                return grid_w
        valid = ', '.join(_fmt(v) for v in self.widths)
        raise ValueError(
            f'width {width} is not on the width grid [{_fmt(self.lo)}, '
            f'{_fmt(self.hi)}] step {_fmt(self.step)} (valid: {valid})')

    def sample(self, generator: random.Random) -> float:
        """Draw one grid width uniformly, using ``generator`` (a seeded
        ``random.Random``) so that sampling is reproducible and identical on
        every rank that uses the same seed."""
        return generator.choice(self.widths)

    def sample_stages(self, generator: random.Random, num_stages: int) -> Width:
        """One grid width per stage, each drawn uniformly and independently (the
        non-uniform sampling of BigNAS); normalized, so equal draws are the
        uniform width."""
        return normalize_width([generator.choice(self.widths) for _ in range(num_stages)])
