"""MultiResolution: one sample, several input resolutions (the paper's views)."""
import copy
from itertools import product
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform, Compose

from ...registry import TRANSFORMS
from ...scale import Scale, scale_pair


def _type_name(cfg) -> str:
    name = cfg.get('type', '') if isinstance(cfg, dict) else type(cfg).__name__
    return name if isinstance(name, str) else name.__name__


def _is_resize(cfg) -> bool:
    # Resize (mmcv/mmdet/mmaction, with or without scope prefix) and its
    # fixed-size variants get the view's scale; Random* resizes pick their own.
    name = _type_name(cfg).split('.')[-1]
    return name.endswith('Resize') and not name.startswith('Random')


def checked_views(scales: Sequence[Scale], frames: Optional[Sequence[int]] = None,
                  who: str = 'MultiResolution') -> List[Tuple]:
    """The views, all (scale, frames) pairs scale-major, of view lists whose
    first entries are the full network's and the others at most those
    (ValueErrors naming ``who``, the bad value and what is valid)."""
    if not scales:
        raise ValueError(f'{who}: scales is empty; give at least the '
                         'full network\'s resolution, e.g. scales=[224, 160]')
    pairs = [scale_pair(s, who) for s in scales]
    for scale, pair in zip(scales[1:], pairs[1:]):
        if pair[0] > pairs[0][0] or pair[1] > pairs[0][1]:
            raise ValueError(
                f'{who}: scale {scale!r} is above the full network\'s '
                f'resolution {scales[0]!r} (the first of scales); valid scales '
                f'are at most {scales[0]!r}')
    if frames is not None:
        if not frames:
            raise ValueError(f'{who}: frames is empty; give the full '
                             'clip length first, e.g. frames=[8, 5, 3]')
        for f in frames:
            if not isinstance(f, (int, np.integer)) or f <= 0 or f > frames[0]:
                raise ValueError(
                    f'{who}: frame count {f!r} is invalid; valid counts '
                    f'are positive ints at most the first one ({frames[0]!r})')
    scales = [tuple(s) if isinstance(s, (tuple, list)) else int(s) for s in scales]
    return list(product(scales, [int(f) for f in frames] if frames else [None]))


def uniform_frame_indices(clip_len: int, frames: int) -> np.ndarray:
    """``frames`` indices spread uniformly over a clip of ``clip_len`` frames
    (the centre of each of ``frames`` equal segments), so a shorter view covers
    the same span of time as the full clip."""
    return ((np.arange(frames) + 0.5) * clip_len / frames).astype(np.int64)


def frame_axis(clip_len: int) -> str:
    """Which ``SampleFrames`` field counts a view's frames: ``clip_len``, or
    ``num_clips`` for segment sampling (``clip_len`` 1, as mmaction's own
    ``SampleFrames`` tells 2D recognizers apart: TSN's frames are its segments)."""
    return 'num_clips' if int(clip_len) == 1 else 'clip_len'


@TRANSFORMS.register_module()
class MultiResolution(BaseTransform):
    """Emit one view of a sample per input resolution, for MutualNet training.

    A wrapper in the spirit of mmcv's ``TestTimeAug``: the sample that reaches it
    is copied once per view and each copy runs ``transforms`` (the tail of the
    pipeline: the host library's own ``Resize`` and packing transforms), with every
    ``*Resize`` in it given the view's ``scale``. Boxes, masks, ``img_shape``,
    ``scale_factor`` and padding metadata are therefore those the host library
    computes. The output is a dict of lists, one entry per view, which mmengine's
    ``pseudo_collate``/``default_collate`` turn into one batch per view;
    :class:`~mutual_mm.engine.MutualLearningHook` feeds each view to the stock
    data preprocessor.

    Args:
        scales (list): input resolutions; the FIRST is the full network's (the
            highest), the others must not exceed it. Detection: ``(long, short)``
            edges for a keep-ratio ``Resize``, e.g. ``[(1000, 600), (1000, 480)]``;
            recognition: ints (square sizes), e.g. ``[224, 192, 160, 128]``.
        transforms (list[dict]): the pipeline tail run for each view; must contain
            a ``Resize`` without its own ``scale``.
        frames (list[int], optional): video only: frame counts (the first is the
            full clip, e.g. ``[8, 5, 3]``); for segment sampling (``SampleFrames``
            with ``clip_len=1``, TSN) the numbers of segments. Each view's frames are taken uniformly
            from the decoded clip (:func:`uniform_frame_indices`), so every view
            covers the same moment. Views are all (scale, frames) pairs,
            scale-major: view ``i * len(frames) + j`` has ``scales[i]``,
            ``frames[j]``; view 0 is the full network's.
    """

    def __init__(self, scales: Sequence[Scale], transforms: List[dict],
                 frames: Optional[Sequence[int]] = None):
        self.views = checked_views(scales, frames)
        resizes = [t for t in transforms if _is_resize(t)]
        if not resizes:
            raise ValueError('MultiResolution: transforms has no Resize to give the '
                             "views' scales to; add e.g. dict(type='Resize', "
                             'keep_ratio=True)')
        for t in resizes:
            if isinstance(t, dict) and 'scale' in t:
                raise ValueError(
                    f'MultiResolution: {_type_name(t)} in transforms has its own '
                    f"scale={t['scale']!r}; remove it, MultiResolution sets each "
                    "view's scale from `scales`")
        self.frames = None if frames is None else [int(f) for f in frames]
        self.scales = [s for s, _ in self.views[::len(self.frames or [None])]]
        self.pipelines = [self._pipeline_at(scale_pair(s, 'MultiResolution'), transforms)
                          for s in self.scales]

    @staticmethod
    def _pipeline_at(scale: Tuple[int, int], transforms: List[dict]) -> Compose:
        steps = []
        for t in transforms:
            t = copy.deepcopy(t)
            if isinstance(t, dict) and _is_resize(t):
                t['scale'] = scale
            steps.append(t)
        return Compose(steps)  # built in the current default scope

    def __len__(self) -> int:
        return len(self.views)

    def _frames_view(self, results: dict, frames: int) -> dict:
        clip_len = int(results['clip_len'])
        axis = frame_axis(clip_len)
        total = int(results.get('num_clips', 1)) if axis == 'num_clips' else clip_len
        if frames > total:
            raise ValueError(f'MultiResolution: frames={frames} exceeds the decoded '
                             f'{axis}={total}; valid frame counts are at most {total}')
        if frames == total:
            return results
        keep = uniform_frame_indices(total, frames)
        if axis == 'num_clips':  # segments: one frame each
            index = keep
        else:
            num_clips = len(results['imgs']) // clip_len
            index = np.concatenate([keep + c * clip_len for c in range(num_clips)])
        results['imgs'] = [results['imgs'][i] for i in index]
        if 'frame_inds' in results:
            results['frame_inds'] = np.asarray(results['frame_inds'])[index]
        results[axis] = frames
        return results

    def _check_inputs(self, results: dict) -> None:
        """The sample must be loaded (and, for frame views, decoded) already:
        MultiResolution goes after the loading transforms and before the resize
        and packing, which are its ``transforms``."""
        where = ('MultiResolution goes after the transforms that load the sample '
                 '(images: LoadImageFromFile, LoadAnnotations and any flip or crop; '
                 'videos: DecordInit, SampleFrames, DecordDecode and any crop) and '
                 'takes the resize and packing as its `transforms`')
        if 'img' not in results and 'imgs' not in results:
            raise ValueError(f'MultiResolution got a sample with no loaded image or '
                             f'frames (keys: {sorted(results)}): {where}')
        if self.frames is not None and ('imgs' not in results or 'clip_len' not in results):
            raise ValueError(f'MultiResolution(frames={self.frames}) needs decoded clip '
                             f'frames (imgs, clip_len), got keys {sorted(results)}: {where}')

    def transform(self, results: dict) -> Dict[str, list]:
        self._check_inputs(results)
        outputs = []
        for pipeline, (scale, frames) in zip(
                [p for p in self.pipelines for _ in (self.frames or [None])],
                self.views):
            view = copy.deepcopy(results)
            if frames is not None:
                view = self._frames_view(view, frames)
            packed = pipeline(view)
            if packed is None:
                raise RuntimeError(f'MultiResolution: the view at scale {scale!r} '
                                   'was dropped by a transform')
            outputs.append(packed)
        return {key: [out[key] for out in outputs] for key in outputs[0]}

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scales={self.scales}, frames={self.frames}, '
                f'transforms={self.pipelines[0]})')
