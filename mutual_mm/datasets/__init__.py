"""Data side of MutualNet: the MultiResolution transform (and datasets)."""
from .transforms import *  # noqa: F401,F403
