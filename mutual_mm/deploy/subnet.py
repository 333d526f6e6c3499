"""A deployable subnet: width x input size (x frame count) (x proposals)."""
from dataclasses import dataclass, replace
from typing import Optional

from ..ops import Width, is_stage_widths, normalize_width, width_str
from ..scale import Scale


def _scale_str(scale) -> str:
    if scale is None:
        return 'native'
    if isinstance(scale, (tuple, list)):
        return 'x'.join(str(int(s)) for s in scale)
    return str(int(scale))


@dataclass(frozen=True)
class Subnet:
    """One subnet a trained MutualNet model can run at.

    Attributes:
        width: width multiplier of the backbone, or stage widths: one per stage
            of the backbone's ``width_stages()`` (a tuple; equal values are the
            uniform width).
        scale: input resolution as the pipeline's ``Resize`` takes it (``(long,
            short)`` for detection, an int square size for recognition), or None
            for the pipeline's own. For SlowFast (``SlimResNet3dSlowFast``): the
            short side of the Slow pathway's input, set in the backbone (the
            Fast pathway keeps the pipeline's clip), None for the whole.
        frames: frames of the clip, video only; for SlowFast of the Slow
            pathway's input (None: the whole).
        proposals: two-stage detectors only: the RPN proposals kept per image
            at test time (``test_cfg.rpn.max_per_img``), which the RoI heads
            then run on; None for the config's own. A test-time knob: it
            needs no training and no BN calibration of its own.
    """
    width: Width
    scale: Optional[Scale] = None
    frames: Optional[int] = None
    proposals: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, 'width', normalize_width(self.width))
        if isinstance(self.scale, list):
            object.__setattr__(self, 'scale', tuple(int(s) for s in self.scale))
        if self.proposals is not None:
            if int(self.proposals) != self.proposals or int(self.proposals) < 1:
                raise ValueError(f'Subnet: proposals={self.proposals!r}; valid: a '
                                 'positive whole number, or None for the config\'s own')
            object.__setattr__(self, 'proposals', int(self.proposals))

    @property
    def key(self) -> str:
        """Stable name, e.g. ``w0.6_s1000x360``, ``w0.63_s142_f3``,
        ``w0.5_s1000x360_p300`` or (stage widths) ``w0.25-0.5-1-1-1-1_s32``."""
        key = f'w{width_str(self.width)}_s{_scale_str(self.scale)}'
        if self.frames is not None:
            key = f'{key}_f{int(self.frames)}'
        return key if self.proposals is None else f'{key}_p{self.proposals}'

    @property
    def network(self) -> 'Subnet':
        """The subnet without its test-time knobs (proposals): what BN
        calibration and the trained space are about."""
        return replace(self, proposals=None)

    @property
    def stage_widths(self) -> bool:
        """Whether the subnet has one width per stage (not one for all)."""
        return is_stage_widths(self.width)

    def as_dict(self) -> dict:
        width = list(self.width) if self.stage_widths else self.width
        return dict(width=width, scale=self.scale, frames=self.frames,
                    proposals=self.proposals)
