from .multi_resolution import MultiResolution, uniform_frame_indices
from .skip_unreadable import SkipUnreadable

__all__ = ['MultiResolution', 'uniform_frame_indices', 'SkipUnreadable']
