"""Data side of MutualNet: the MultiResolution transform (and datasets)."""
from ..extras import available
from .transforms import *  # noqa: F401,F403

if available('mmaction'):
    from .charades import CharadesClipLabels, CharadesDataset  # noqa: F401
