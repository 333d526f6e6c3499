"""A deployable subnet: width x input size (x frame count)."""
from dataclasses import dataclass
from typing import Optional, Tuple, Union

Scale = Union[int, Tuple[int, int]]


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
        width: width multiplier of the backbone.
        scale: input resolution as the pipeline's ``Resize`` takes it (``(long,
            short)`` for detection, an int square size for recognition), or None
            for the pipeline's own. For SlowFast (``SlimResNet3dSlowFast``): the
            short side of the Slow pathway's input, set in the backbone (the
            Fast pathway keeps the pipeline's clip), None for the whole.
        frames: frames of the clip, video only; for SlowFast of the Slow
            pathway's input (None: the whole).
    """
    width: float
    scale: Optional[Scale] = None
    frames: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, 'width', round(float(self.width), 6))
        if isinstance(self.scale, list):
            object.__setattr__(self, 'scale', tuple(int(s) for s in self.scale))

    @property
    def key(self) -> str:
        """Stable name, e.g. ``w0.6_s1000x360`` or ``w0.63_s142_f3``."""
        key = f'w{self.width:g}_s{_scale_str(self.scale)}'
        return key if self.frames is None else f'{key}_f{int(self.frames)}'

    def as_dict(self) -> dict:
        return dict(width=self.width, scale=self.scale, frames=self.frames)
