"""Input sizes: one type and one convention for every module.

A :data:`Scale` is what the host libraries' ``Resize`` takes as ``scale``: an int
(a square side) or a pair of ints. The pair's meaning is ``Resize``'s: with
``keep_ratio=True`` (detection) the two edge limits ``(long, short)``, with
``keep_ratio=False`` the output ``(w, h)``. Either way its short side is the pair's
minimum, which is how a scale is compared with another (:func:`short_side`).
Tensors are ``(..., h, w)``: a size taken from one is written ``(w, h)`` before it
becomes a Scale.
"""
from typing import Optional, Tuple, Union

import numpy as np

Scale = Union[int, Tuple[int, int]]


def scale_pair(scale, who: str = 'scale') -> Tuple[int, int]:
    """``scale`` as a validated pair of positive ints (an int ``s`` is ``(s, s)``);
    a clear error naming ``who`` otherwise."""
    if isinstance(scale, (int, np.integer)) and not isinstance(scale, bool):
        pair = (int(scale), int(scale))
    elif (isinstance(scale, (tuple, list)) and len(scale) == 2
          and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                  for s in scale)):
        pair = (int(scale[0]), int(scale[1]))
    else:
        raise ValueError(
            f'{who}: scale {scale!r} is neither an int (a square size) '
            'nor a pair of ints (long edge, short edge)')
    if min(pair) <= 0:
        raise ValueError(f'{who}: scale {scale!r} has a non-positive size')
    return pair


def short_side(scale) -> Optional[int]:
    """The short side of a Scale, or None for anything that is not one (e.g. a
    ``(-1, s)`` pair, which only fixes one edge)."""
    try:
        return min(scale_pair(scale))
    except ValueError:
        return None
