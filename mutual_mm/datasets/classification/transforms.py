"""Classification transforms mmcv lacks: the Inception random-resized crop, a
short-edge resize, and packing into (tensor, data sample with gt_label)."""
import math
from typing import Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from ...registry import TRANSFORMS


@TRANSFORMS.register_module()
class ClsRandomResizedCrop(BaseTransform):
    """Crop a random area and aspect ratio, resize it to ``scale`` (the standard
    ImageNet training crop, as torchvision's ``RandomResizedCrop``).

    Args:
        scale (int | tuple[int, int]): output size, square or (w, h).
        crop_ratio_range (tuple): range of the crop's area fraction.
            Defaults to (0.08, 1.0); US-Net/MutualNet MobileNets use (0.25, 1.0).
        aspect_ratio_range (tuple): range of the crop's w/h (log-uniform).
        max_attempts (int): tries before the central-crop fallback.
        interpolation (str): mmcv interpolation. Defaults to 'bilinear'.
    """

    def __init__(self, scale, crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10, interpolation: str = 'bilinear'):
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
        if not (0 < crop_ratio_range[0] <= crop_ratio_range[1] <= 1):
            raise ValueError(f'ClsRandomResizedCrop: crop_ratio_range={crop_ratio_range}; '
                             'valid: 0 < lo <= hi <= 1')
        if not (0 < aspect_ratio_range[0] <= aspect_ratio_range[1]):
            raise ValueError(f'ClsRandomResizedCrop: aspect_ratio_range='
                             f'{aspect_ratio_range}; valid: 0 < lo <= hi')
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts
        self.interpolation = interpolation

    def crop_box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """(y, x, crop_h, crop_w) drawn from numpy's global RNG."""
        area = h * w
        log_ratio = (math.log(self.aspect_ratio_range[0]),
                     math.log(self.aspect_ratio_range[1]))
        for _ in range(self.max_attempts):
            target = area * np.random.uniform(*self.crop_ratio_range)
            ratio = math.exp(np.random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * ratio)))
            ch = int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return (np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1),
                        ch, cw)
        # fallback: the central crop at the nearest allowed aspect ratio
        ratio = w / h
        if ratio < self.aspect_ratio_range[0]:
            cw, ch = w, int(round(w / self.aspect_ratio_range[0]))
        elif ratio > self.aspect_ratio_range[1]:
            ch, cw = h, int(round(h * self.aspect_ratio_range[1]))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        y, x, ch, cw = self.crop_box(*img.shape[:2])
        img = mmcv.imresize(img[y:y + ch, x:x + cw], self.scale,
                            interpolation=self.interpolation)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, crop_ratio_range='
                f'{self.crop_ratio_range}, aspect_ratio_range={self.aspect_ratio_range})')


@TRANSFORMS.register_module()
class ClsResizeEdge(BaseTransform):
    """Resize keeping the aspect ratio so the short (or long) edge is ``scale``
    (ImageNet evaluation: short edge 256, then ``CenterCrop(224)``).

    Its name does not end with ``Resize`` on purpose: MultiResolution and the
    deploy tools set a subnet's size on the pipeline's ``*Resize``
    transforms, which must be the final square ``Resize``, not this one.
    """

    def __init__(self, scale: int, edge: str = 'short', interpolation: str = 'bilinear'):
        if edge not in ('short', 'long'):
            raise ValueError(f"ClsResizeEdge: edge={edge!r}; valid: 'short', 'long'")
        self.scale = int(scale)
        self.edge = edge
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        ref = min(h, w) if self.edge == 'short' else max(h, w)
        factor = self.scale / ref
        size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
        results['img'] = mmcv.imresize(img, size, interpolation=self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack ``img`` as a CxHxW uint8 tensor (``inputs``) and a
    :class:`~mmengine.structures.BaseDataElement` (``data_samples``) holding
    ``gt_label`` (a 1-element LongTensor) and ``meta_keys`` as metainfo."""

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[:, :, None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys
                                           if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.tensor([int(results['gt_label'])], dtype=torch.long)
        return dict(inputs=inputs, data_samples=sample)
