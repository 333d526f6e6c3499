from .multi_resolution import MultiResolution, uniform_frame_indices

__all__ = ['MultiResolution', 'uniform_frame_indices']
