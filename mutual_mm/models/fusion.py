"""AdaptiveFusion: Fast-to-Slow lateral fusion when the Slow pathway is
downscaled in width, space and time (paper §4.2.2, Fig. 6)."""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MODELS


def uniform_time_positions(full: int, frames: int, device=None) -> torch.Tensor:
    """Indices of ``frames`` frames spread uniformly over ``full`` (the same rule
    as :func:`mutual_mm.datasets.uniform_frame_indices`)."""
    return ((torch.arange(frames, device=device) + 0.5) * full / frames).long()


@MODELS.register_module()
class AdaptiveFusion(nn.Module):
    """Fuse Fast features into a Slow pathway of any (width, size, frames).

    The Fast features first pass the stock lateral connection (the 5x1x1
    time-strided convolution with ``2*beta*C`` outputs, owned by the Slow
    pathway as in mmaction2, so checkpoints keep their keys); the result is then
    interpolated (bilinear) to the Slow features' spatial size and sampled at the
    Slow frames' time positions, and concatenated after the Slow features:
    ``[slow (gamma_w C) | fast (2 beta C)]``. The next Slow convolution therefore
    reads its FIRST ``gamma_w C`` weight columns for the Slow part and its LAST
    ``2 beta C`` columns for the Fast part, whatever ``gamma_w`` is (set by
    :class:`SlimResNet3dSlowFast` with ``set_input_layout``). At the full
    network the resampling is the identity and this is mmaction2's
    concatenation exactly.

    Holds no parameters of its own.
    """

    def forward(self, x_slow: torch.Tensor, x_fast_lateral: torch.Tensor) -> torch.Tensor:
        t, h, w = x_slow.shape[2:]
        fast = x_fast_lateral
        if fast.shape[2] != t:
            fast = fast.index_select(2, uniform_time_positions(fast.shape[2], t, fast.device))
        if fast.shape[3:] != (h, w):
            n, c, tf = fast.shape[:3]
            frames = fast.transpose(1, 2).reshape(n * tf, c, *fast.shape[3:])
            frames = F.interpolate(frames, size=(h, w), mode='bilinear', align_corners=False)
            fast = frames.reshape(n, tf, c, h, w).transpose(1, 2)
        return torch.cat((x_slow, fast), dim=1)
