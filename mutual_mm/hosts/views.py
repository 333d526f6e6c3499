"""Where a cohort member's input view comes from.

Three sources, one interface (``views``, ``feed``, ``describe``, ``log_vars``,
``trained_sizes``; ``make`` for views made from the batch): the data
pipeline's :class:`MultiResolution` (one packed batch per view; the member is
fed its view's batch), views made from the loaded, preprocessed batch on its
device (:class:`BatchViews`: the pipeline stays the stock single-resolution
one, only the views the cohort uses are made, as the official MutualNet code
does with ``F.interpolate``), or the backbone's own views (SlowFast: the clip
stays whole for the Fast pathway and the backbone downscales its Slow input;
every member is fed the one batch).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..datasets.transforms import MultiResolution
from ..datasets.transforms.multi_resolution import checked_views
from ..models.fusion import uniform_time_positions
from ..datasets.pipeline_reading import find_multi_resolution
from ..scale import short_side


class PipelineViews:
    """Views made per sample by the pipeline's MultiResolution: ``views`` are its
    (scale, frames) pairs; without one (widths only, US-Net) the pipeline's
    own input is the single view."""

    def __init__(self, transform: Optional[MultiResolution]):
        self.views: List[Tuple] = transform.views if transform is not None else [(None, None)]

    @classmethod
    def of(cls, dataset, multi_resolution: bool = True) -> 'PipelineViews':
        transform = find_multi_resolution(dataset)
        if transform is None and multi_resolution:
            raise ValueError(
                'MutualLearningHook: the train pipeline has no MultiResolution '
                'transform, so there are no resolutions to sample; add one (see '
                'mutual_mm.datasets.MultiResolution) or set multi_resolution=False '
                'to train widths only, or give the hook batch_views=dict(scales=[...]) '
                'to make the views from the loaded batch')
        return cls(transform)

    def feed(self, index: int) -> int:
        """Select view ``index``; the index of the data view to feed."""
        return index

    def make(self, batch: dict, index: int) -> dict:
        """The member's input from the preprocessed batch it is fed: that batch
        (the pipeline made the view)."""
        return batch

    def describe(self, index: int) -> str:
        scale, frames = self.views[index]
        return ', '.join(f'{k} {v}' for k, v in (('scale', scale), ('frames', frames))
                         if v is not None) or "the pipeline's input size"

    def log_vars(self, prefix: str, index: int) -> Dict[str, torch.Tensor]:
        """The view's input size (short edge) and frame count, for the logs."""
        scale, frames = self.views[index]
        out = {}
        if scale is not None:
            out[f'{prefix}.res'] = torch.tensor(float(short_side(scale)))
        if frames is not None:
            out[f'{prefix}.frames'] = torch.tensor(float(frames))
        return out

    def trained_sizes(self) -> Tuple[Optional[list], Optional[list]]:
        """(input sizes, frame counts) trained, in absolute terms."""
        scales = list(dict.fromkeys(s for s, _ in self.views if s is not None)) or None
        frames = list(dict.fromkeys(f for _, f in self.views if f is not None)) or None
        return scales, frames


class BatchViews(PipelineViews):
    """Views made from the preprocessed full-size batch by the host family
    (``host.batch_view``), only for the members that use them: ``views`` are
    all (scale, frames) pairs, scale-major, the first the full network's (it
    must be what the pipeline delivers)."""

    def __init__(self, host, scales: Sequence, frames: Optional[Sequence[int]] = None):
        self.host = host
        self.views = checked_views(scales, frames, who='MutualLearningHook batch_views')
        self._first_view_checked = False

    @classmethod
    def of(cls, host, dataset, scales: Sequence, frames=None) -> 'BatchViews':
        host.check_batch_views(frames)
        if find_multi_resolution(dataset) is not None:
            raise ValueError('MutualLearningHook: batch_views makes the views from the '
                             'loaded batch; remove MultiResolution from the train pipeline')
        return cls(host, scales, frames)

    def feed(self, index: int) -> int:
        return 0  # the one loaded batch; make() derives the view

    def make(self, batch: dict, index: int) -> dict:
        """The preprocessed ``batch`` at view ``index`` (the full view: as it is)."""
        if index == 0:
            if not self._first_view_checked:
                self._check_first_view(batch)
            return batch
        return self.host.batch_view(batch, *self.views[index])

    def _check_first_view(self, batch: dict) -> None:
        """The full network's view is the loaded batch itself, so it must be the
        first view: else every other view is still right (each is made from the
        original size) but the sizes recorded as trained, thus calibrated and
        tabulated, would be wrong. Checked once, on the first batch: the family
        makes the first view from the batch, which must change no size."""
        made = self.host.batch_view(batch, *self.views[0])
        loaded, first = self.host.batch_sizes(batch), self.host.batch_sizes(made)
        if loaded != first:
            raise ValueError(
                f'MutualLearningHook batch_views: the first view ({self.describe(0)}) '
                "is the full network's and must be what the train pipeline delivers, "
                f'but the loaded batch has {loaded} where that view has {first}; '
                "make the pipeline's Resize (SampleFrames) deliver it, or list the "
                "pipeline's size first in batch_views")
        self._first_view_checked = True


def resize_last_two(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of the last two (spatial) dims of ``x``, every leading dim
    kept (half-pixel centres, no antialiasing: what cv2's INTER_LINEAR, the
    pipelines' ``Resize``, does)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    flat = x.reshape((-1, 1) + tuple(x.shape[-2:]))
    out = F.interpolate(flat.float(), size=size, mode='bilinear', align_corners=False)
    return out.to(x.dtype).reshape(tuple(lead) + tuple(size))


def square_or_pair(scale) -> Tuple[int, int]:
    """(height, width) of a fixed-size view: an int is a square; a pair is
    ``(w, h)`` as ``Resize(keep_ratio=False)`` takes it."""
    if isinstance(scale, (tuple, list)):
        return int(scale[1]), int(scale[0])
    return int(scale), int(scale)


def refuse_frames(who: str, frames) -> None:
    """Images have no frames: a ValueError naming ``frames`` unless it is None."""
    if frames is not None:
        raise ValueError(f'{who}: images have no frames; batch_views frames must be '
                         f'None, got {frames!r}')


def take_frames(x: torch.Tensor, dim: int, frames: Optional[int]) -> torch.Tensor:
    """``frames`` entries of ``dim`` spread uniformly over it (the views' rule)."""
    full = x.shape[dim]
    if frames is None or frames == full:
        return x
    return x.index_select(dim, uniform_time_positions(full, frames, x.device))


class BackboneViews:
    """Views the backbone makes of its own input (``owns_input_views``):
    ``views`` are its (size factor, frame factor) pairs."""

    def __init__(self, backbone):
        self.backbone = backbone
        self.views: List[Tuple[float, float]] = list(backbone.input_views)

    @classmethod
    def of(cls, backbone, dataset) -> 'BackboneViews':
        if find_multi_resolution(dataset) is not None:
            raise ValueError(
                f'MutualLearningHook: {type(backbone).__name__} makes its own input '
                'views (slow_size_factors, slow_frame_factors); remove '
                'MultiResolution from the train pipeline')
        return cls(backbone)

    def feed(self, index: int) -> int:
        self.backbone.set_input_view(index)
        return 0

    def make(self, batch: dict, index: int) -> dict:
        return batch  # the backbone makes the view

    def describe(self, index: int) -> str:
        size, frames = self.views[index]
        return f'input size x{size:.3g}, frames x{frames:.3g} (backbone view {index})'

    def log_vars(self, prefix: str, index: int) -> Dict[str, torch.Tensor]:
        size, frames = self.views[index]  # factors of the backbone's input
        return {f'{prefix}.res': torch.tensor(float(size)),
                f'{prefix}.frames': torch.tensor(float(frames))}

    def trained_sizes(self) -> Tuple[Optional[list], Optional[list]]:
        # factors, not sizes: the absolute sizes depend on the clip at deployment
        return None, None
