"""What a checkpoint was trained on, recorded by the hook in the checkpoint's meta,
and the check that a subnet lies inside it.

A MutualNet checkpoint is only good at the widths, input sizes and frame counts
its cohorts were drawn from (in between included: that is what the method
interpolates); a subnet outside them runs, calibrates and tests without
complaint but was never trained. Deployment (calibration, testing at a
subnet, the lookup table, export) checks against this record.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

META_KEY = 'mutual_learning'
ALLOW_HINT = ('pass --allow-untrained (allow_untrained=True) to use it anyway; it is '
              'then logged and marked in the lookup table')


def _box(scale) -> Tuple[float, float]:
    """(long, short) of a scale; an int ``s`` is the box mmcv's keep-ratio
    ``Resize(scale=s)`` fits images into, ``(s, s)``."""
    if isinstance(scale, (tuple, list)):
        return float(max(scale)), float(min(scale))
    return float(scale), float(scale)


def _short_sides(scales: Sequence, aspect: float) -> List[float]:
    """The short side of an image whose long/short ratio is ``aspect`` after
    a keep-ratio resize to each of ``scales``: what decides which views a
    subnet lies between when int and (long, short) scales mix (an int 96 and
    (128, 96) give a 4:3 image 72 and 96 px short sides). With ints alone the
    aspect is 1 and the sides are the ints themselves."""
    return [min(long / aspect, short) for long, short in map(_box, scales)]


@dataclass(frozen=True)
class TrainedSpace:
    """The subnets a checkpoint's training drew its cohorts from.

    Attributes:
        width_range: (min, max) width of the hook.
        width_step: spacing of its width grid.
        scales: the MultiResolution scales (None: the pipeline's one size, or a
            SlowFast backbone's own Slow views, whose sizes are not checked).
        frames: the MultiResolution frame counts (None: not varied).
        distill: ``'kl'`` or ``'gt'``.
    """
    width_range: Sequence[float]
    width_step: float
    scales: Optional[List] = None
    frames: Optional[List[int]] = None
    distill: str = 'kl'

    def as_meta(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> Optional['TrainedSpace']:
        """The record of a checkpoint; None for one written without the hook
        (or before it kept this record): :func:`check_trained` then knows
        only the full width as trained."""
        meta = (checkpoint or {}).get('meta') or {}
        record = meta.get(META_KEY)
        return cls(**record) if record else None

    def describe(self) -> str:
        parts = [f'widths {self.width_range[0]:g}..{self.width_range[1]:g}']
        if self.scales:
            parts.append(f'scales {self.scales}')
        if self.frames:
            parts.append(f'frames {self.frames}')
        return ', '.join(parts)

    def untrained_reasons(self, subnet) -> List[str]:
        """Why ``config`` (a :class:`~mutual_mm.deploy.Subnet`) lies
        outside; empty when it is inside."""
        reasons = []
        lo, hi = self.width_range
        if not lo - 1e-6 <= subnet.width <= hi + 1e-6:
            reasons.append(f'width {subnet.width:g} is outside {lo:g}..{hi:g}')
        if self.scales and subnet.scale is not None:
            # the images' aspect, as the first (long, short) scale fits them
            boxes = [_box(s) for s in list(self.scales) + [subnet.scale]
                     if isinstance(s, (tuple, list))]
            aspect = boxes[0][0] / boxes[0][1] if boxes else 1.0
            sides = _short_sides(self.scales, aspect)
            side = _short_sides([subnet.scale], aspect)[0]
            if not min(sides) - 1e-6 <= side <= max(sides) + 1e-6:
                reasons.append(f'input size {subnet.scale} is outside the trained '
                               f'{self.scales}')
        if self.frames and subnet.frames is not None:
            if not min(self.frames) <= subnet.frames <= max(self.frames):
                reasons.append(f'{subnet.frames} frames is outside the trained '
                               f'{self.frames}')
        return reasons


NO_RECORD_REASON = 'width below 1 with no record'
NO_RECORD = ('the checkpoint holds no record of MutualNet training (meta '
             f'{META_KEY!r}: trained without MutualLearningHook?), so only its full '
             'width is known to be trained')


def check_trained(subnets: Iterable, space: Optional[TrainedSpace],
                  allow_untrained: bool = False) -> Dict[str, List[str]]:
    """Raise ``ValueError`` for subnets outside ``space`` (naming what
    was trained), or, with ``allow_untrained``, log a warning; returns
    ``{config key: reasons}`` of those outside. Without a record
    (``space`` None) every width below 1 counts as outside."""
    if space is None:  # one reason for all: name a few of them
        keys = [c.key for c in subnets if c.width < 1 - 1e-6]
        outside = {key: [NO_RECORD_REASON] for key in keys}
        listing = ', '.join(keys[:5]) + (f' and {len(keys) - 5} more' if len(keys) > 5
                                         else '') + f': {NO_RECORD_REASON}'
        trained_on = NO_RECORD
    else:
        outside = {c.key: r for c in subnets for r in [space.untrained_reasons(c)] if r}
        listing = '; '.join(f'{key}: {", ".join(r)}' for key, r in outside.items())
        trained_on = f'it was trained on {space.describe()}'
    if not outside:
        return outside
    message = f'subnet(s) the checkpoint was not trained on ({listing}); {trained_on}'
    if not allow_untrained:
        raise ValueError(f'{message}. {ALLOW_HINT}')
    print_log(f'{message}; used anyway (allow_untrained)', logger='current', level=30)
    return outside
