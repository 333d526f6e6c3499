"""Where a cohort member's input view comes from.

Two sources, one interface (``views``, ``feed``, ``describe``, ``log_vars``,
``trained_sizes``): the data pipeline's :class:`MultiResolution` (one packed
batch per view; the member is fed its view's batch) or the backbone's own
views (SlowFast: the clip stays whole for the Fast pathway and the backbone
downscales its Slow input; every member is fed the one batch).
"""
from typing import Dict, List, Optional, Tuple

import torch

from ..datasets.transforms import MultiResolution
from ..datasets.wrappers import nested_datasets


def find_multi_resolution(dataset) -> Optional[MultiResolution]:
    """The MultiResolution transform in a dataset's pipeline (dataset wrappers
    such as RepeatDataset / ConcatDataset / ClassBalancedDataset are unwrapped)."""
    for ds in nested_datasets(dataset):
        pipeline = getattr(ds, 'pipeline', None)
        for t in getattr(pipeline, 'transforms', []) or []:
            if isinstance(t, MultiResolution):
                return t
    return None


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
                'to train widths only')
        return cls(transform)

    def feed(self, index: int) -> int:
        """Select view ``index``; the index of the data view to feed."""
        return index

    def describe(self, index: int) -> str:
        scale, frames = self.views[index]
        return ', '.join(f'{k} {v}' for k, v in (('scale', scale), ('frames', frames))
                         if v is not None) or "the pipeline's input size"

    def log_vars(self, prefix: str, index: int) -> Dict[str, torch.Tensor]:
        """The view's input size (short edge) and frame count, for the logs."""
        scale, frames = self.views[index]
        out = {}
        if scale is not None:
            short = min(scale) if isinstance(scale, tuple) else scale
            out[f'{prefix}.res'] = torch.tensor(float(short))
        if frames is not None:
            out[f'{prefix}.frames'] = torch.tensor(float(frames))
        return out

    def trained_sizes(self) -> Tuple[Optional[list], Optional[list]]:
        """(input sizes, frame counts) trained, in absolute terms."""
        scales = list(dict.fromkeys(s for s, _ in self.views if s is not None)) or None
        frames = list(dict.fromkeys(f for _, f in self.views if f is not None)) or None
        return scales, frames


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
