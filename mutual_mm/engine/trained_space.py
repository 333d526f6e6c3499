"""What a checkpoint was trained on, recorded by the hook in the checkpoint's meta,
and the check that a subnet lies inside it.

A MutualNet checkpoint is only good at the widths, input sizes and frame counts
its cohorts were drawn from (in between included: that is what the method
interpolates); a subnet outside them runs, calibrates and tests without
complaint but was never trained. Deployment (calibration, testing at a
subnet, the lookup table, export) lists and checks subnets against this
record, the one record of what was trained: :class:`TrainedSpaceRecord` writes
it, and keeps it true across a resume.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from ..internals import resuming
from ..ops import is_stage_widths, width_str

#: ``checkpoint['meta'][META_KEY]``: the record (the name is kept for the
#: checkpoints written so far)
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
        stage_widths: whether the random members drew one width per backbone
            stage (``MutualLearningHook(stage_widths=True)``): then subnets with
            stage widths inside ``width_range`` were trained; else only uniform
            widths were (a record written before this field existed: False).
    """
    width_range: Sequence[float]
    width_step: float
    scales: Optional[List] = None
    frames: Optional[List[int]] = None
    distill: str = 'kl'
    stage_widths: bool = False

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

    def differences(self, other: 'TrainedSpace') -> List[str]:
        """``"<field> <self's value> vs <other's value>"`` for each field that
        differs, compared in the checkpoint's form (tuples and lists alike)."""
        mine, theirs = _plain(self.as_meta()), _plain(other.as_meta())
        return [f'{key} {mine[key]!r} vs {theirs.get(key)!r}' for key in mine
                if mine[key] != theirs.get(key)]

    def describe(self) -> str:
        parts = [f'widths {self.width_range[0]:g}..{self.width_range[1]:g}'
                 + (' per stage' if self.stage_widths else '')]
        if self.scales:
            parts.append(f'scales {self.scales}')
        if self.frames:
            parts.append(f'frames {self.frames}')
        return ', '.join(parts)

    def untrained_reasons(self, subnet) -> List[str]:
        """Why ``subnet`` (a :class:`~mutual_mm.deploy.Subnet`) lies
        outside; empty when it is inside."""
        reasons = []
        lo, hi = self.width_range
        widths = subnet.width if is_stage_widths(subnet.width) else (subnet.width,)
        if not all(lo - 1e-6 <= w <= hi + 1e-6 for w in widths):
            reasons.append(f'width {width_str(subnet.width)} is outside {lo:g}..{hi:g}')
        if is_stage_widths(subnet.width) and not self.stage_widths:
            reasons.append(f'stage widths {width_str(subnet.width)}: the checkpoint '
                           'trained uniform widths only (MutualLearningHook('
                           'stage_widths=False))')
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
    ``{subnet key: reasons}`` of those outside. Without a record
    (``space`` None) every width below 1 counts as outside."""
    if space is None:  # one reason for all: name a few of them
        keys = [c.key for c in subnets if c.width != 1.0]
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


def _plain(value):
    """``value`` with every tuple a list, as compared: a record read back from
    a checkpoint equals the one written, whatever its sequences became."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class TrainedSpaceRecord:
    """Writes the run's :class:`TrainedSpace` into every checkpoint's meta, and
    refuses a resume whose settings would make the record untrue.

    Why refuse rather than merge: deployment acts on the record without
    asking: every subnet inside it is calibrated, tabulated and exported as
    trained. After a change of widths, views or distillation part-way through a
    run no single space is true: the union would call widths trained that
    trained for a few iterations only, and the new settings alone would drop
    views that did train. A record of iteration counts per width and view would
    be true, but would leave every deploy tool to decide how many iterations
    make a subnet "trained", a threshold no one can set once for all. So a
    resume must train what the checkpoint records; settings the record does not
    hold (``num_random``, ``seed``) may change. To train another space from the
    weights, start a new run from them (``load_from=...``, ``resume=False``): its
    record is then what that run trains.

    A resumed checkpoint without a record (written before the hook kept one)
    is resumed with a warning: this run's settings become the record.

    Order: called by ``MutualLearningHook`` (priority NORMAL) at its
    ``after_load_checkpoint`` (mmengine's ``Runner.resume`` calls it, before
    ``before_train``), its ``before_train`` (once the step knows its views and
    distillation, before the first iteration: nothing trains under refused
    settings) and its ``before_save_checkpoint`` (every hook's runs before
    mmengine writes the file: ``CheckpointHook``'s latest and best checkpoints
    carry the record).
    """

    def __init__(self):
        self.space: Optional[TrainedSpace] = None
        self._resumed = False
        self._recorded: Optional[TrainedSpace] = None  # the resumed checkpoint's

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if resuming(runner):  # a load_from (fine-tuning) starts a record of its own
            self._resumed = True
            self._recorded = TrainedSpace.from_checkpoint(checkpoint)

    def before_train(self, runner, space: TrainedSpace) -> None:
        """Adopt ``space`` (what this run trains); on a resume, refuse one that
        differs from the checkpoint's record.

        Raises:
            ValueError: naming each differing setting, the checkpoint's value
                and this run's.
        """
        if self._resumed:
            recorded = self._recorded
            differences = recorded.differences(space) if recorded is not None else []
            if recorded is None:
                runner.logger.warning(
                    'MutualLearningHook: the resumed checkpoint holds no record of what '
                    f'it was trained on (meta {META_KEY!r}); this run records its own '
                    f'settings ({space.describe()}) as trained')
            elif differences:
                raise ValueError(
                    'MutualLearningHook: resuming a checkpoint trained on other settings '
                    f'({"; ".join(differences)}: the checkpoint\'s record '
                    'vs this run\'s); the record that deployment trusts would no longer '
                    'be true. Resume with the settings the checkpoint records, or start '
                    'a new run from its weights (load_from=..., resume=False) to train '
                    'the new ones')
        self.space = space

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.space is not None:  # None: saved before training set the step up
            checkpoint.setdefault('meta', {})[META_KEY] = self.space.as_meta()
