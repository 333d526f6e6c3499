"""Data side of MutualNet: the MultiResolution transform (and datasets)."""
from .charades import CharadesClipLabels, CharadesDataset  # noqa: F401
from .transforms import *  # noqa: F401,F403
from .synthetic_ava import ava_files, make_ava  # noqa: F401
