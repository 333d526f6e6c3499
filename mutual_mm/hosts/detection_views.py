"""A detection training batch at another keep-ratio scale, made from the
preprocessed full-size batch (``MutualLearningHook(batch_views=...)``).

What mmdet's pipeline would have delivered at that scale (``Resize(scale,
keep_ratio=True)`` of the original image, ``PackDetInputs``, the same
``DetDataPreprocessor``): each image's size and ``scale_factor`` computed from
its ``ori_shape`` with mmcv's own rounding, its valid region resized bilinearly
(cv2's INTER_LINEAR) and padded as the preprocessor pads, boxes rescaled and
clipped as ``Resize`` does, masks resized with mmdet's own mask structures.
Only the pixels differ from the pipeline's: they are a resize of an already
resized image (measured in tests/test_detection_batch_views.py).
"""
import math
from typing import List, Tuple

import numpy as np
import torch.nn.functional as F
from mmcv import rescale_size
from mmdet.structures.bbox import BaseBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData

#: the DetDataSample fields with instances in image coordinates (the others a
#: training sample may carry, e.g. gt_sem_seg or proposals, are refused)
INSTANCE_FIELDS = ('gt_instances', 'ignored_instances')


def keep_ratio_shape(ori_shape: Tuple[int, int], scale) -> Tuple[int, int]:
    """(h, w) of an image of ``ori_shape`` (h, w) after ``Resize(scale=scale,
    keep_ratio=True)``: mmcv's ``rescale_size``, so the rounding is the same;
    an int scale is mmcv's ``(scale, scale)``."""
    pair = tuple(scale) if isinstance(scale, (tuple, list)) else (int(scale), int(scale))
    new_w, new_h = rescale_size((int(ori_shape[1]), int(ori_shape[0])), pair)
    return int(new_h), int(new_w)


def padded(shape: Tuple[int, int], divisor: int) -> Tuple[int, int]:
    """``shape`` rounded up to multiples of ``divisor`` (the preprocessor's
    per-image ``pad_shape``)."""
    return tuple(int(math.ceil(s / divisor)) * divisor for s in shape)


def rescale_boxes(boxes, factor: Tuple[float, float], img_shape: Tuple[int, int]):
    """Boxes (a tensor, or mmdet boxes) scaled by ``factor`` (w, h) and clipped
    to ``img_shape`` (h, w), as ``Resize`` with ``clip_object_border=True``;
    a new object of the same type."""
    tensor = boxes.tensor if isinstance(boxes, BaseBoxes) else boxes
    fx, fy = factor
    out = tensor * tensor.new_tensor([fx, fy, fx, fy])
    out[..., 0::2] = out[..., 0::2].clamp(0, img_shape[1])
    out[..., 1::2] = out[..., 1::2].clamp(0, img_shape[0])
    return type(boxes)(out) if isinstance(boxes, BaseBoxes) else out


def rescale_masks(masks, old_shape: Tuple[int, int], new_shape: Tuple[int, int],
                  pad_to=None, pad_value: int = 0):
    """Instance masks of an image of ``old_shape`` (h, w) at ``new_shape``,
    padded to ``pad_to`` when the preprocessor pads masks. Bitmaps: the image
    region cropped (the preprocessor may have padded them) and resized;
    polygons: scaled."""
    if isinstance(masks, BitmapMasks):
        old_h, old_w = old_shape
        region = masks.crop(np.array([0, 0, old_w, old_h]))
        # bilinear, rounded back to 0/1 (a 0.5 threshold): closer to the
        # pipeline's nearest-neighbour resize of the ORIGINAL mask than a second
        # nearest-neighbour resize (measured: half the mismatched pixels)
        out = region.resize(new_shape, interpolation='bilinear')
    elif isinstance(masks, PolygonMasks):
        # the preprocessor's pad sets height/width to the padded shape: scale
        # from the image's own shape
        out = PolygonMasks(masks.masks, *old_shape).resize(new_shape)
    else:
        raise TypeError(f'batch views: gt masks of type {type(masks).__name__}; '
                        'valid: BitmapMasks, PolygonMasks')
    return out.pad(pad_to, pad_val=pad_value) if pad_to is not None else out


def detection_batch_view(batch: dict, scale, pad_size_divisor: int = 1,
                         pad_value: float = 0, pad_mask: bool = False,
                         mask_pad_value: int = 0) -> dict:
    """The preprocessed detection ``batch`` at keep-ratio ``scale``.

    Args:
        batch: what ``DetDataPreprocessor`` returned for the full view
            (``inputs`` N x C x H x W, ``data_samples`` DetDataSamples); left as
            it is (the full network trains on it).
        scale: a view scale as ``Resize(scale=..., keep_ratio=True)`` takes it.
        pad_size_divisor, pad_value, pad_mask, mask_pad_value: the data
            preprocessor's padding settings.

    Returns:
        dict: ``batch`` with new ``inputs`` and new ``data_samples`` (metainfo
        ``img_shape``, ``scale_factor``, ``pad_shape``, ``batch_input_shape``
        updated; boxes and masks rescaled; labels shared).
    """
    inputs, samples = batch['inputs'], batch['data_samples']
    shapes = [keep_ratio_shape(s.ori_shape, scale) for s in samples]
    pad_shapes = [padded(shape, pad_size_divisor) for shape in shapes]
    batch_shape = tuple(max(p[k] for p in pad_shapes) for k in (0, 1))
    out = inputs.new_full(tuple(inputs.shape[:2]) + batch_shape, pad_value)
    views: List = []
    for i, (sample, shape, pad_shape) in enumerate(zip(samples, shapes, pad_shapes)):
        old_h, old_w = sample.img_shape
        region = inputs[i:i + 1, :, :old_h, :old_w]
        out[i, :, :shape[0], :shape[1]] = F.interpolate(
            region.float(), size=shape, mode='bilinear', align_corners=False)[0]
        ori_h, ori_w = sample.ori_shape
        meta = dict(sample.metainfo, img_shape=shape, pad_shape=pad_shape,
                    batch_input_shape=batch_shape,
                    scale_factor=(shape[1] / ori_w, shape[0] / ori_h))
        view = type(sample)(metainfo=meta)
        factor = (shape[1] / old_w, shape[0] / old_h)
        for key in sample.keys():
            if key not in INSTANCE_FIELDS:
                raise ValueError(
                    f'batch views: the data samples carry {key!r}, which views made '
                    f'from the batch do not rescale (valid: {", ".join(INSTANCE_FIELDS)}); '
                    'put MultiResolution in the train pipeline instead')
            view.set_field(_rescaled_instances(
                sample.get(key), factor, (old_h, old_w), shape,
                batch_shape if pad_mask else None, mask_pad_value), key)
        views.append(view)
    return dict(batch, inputs=out, data_samples=views)


def _rescaled_instances(instances: InstanceData, factor, old_shape, new_shape,
                        mask_pad_to, mask_pad_value) -> InstanceData:
    # per-instance values that are not image coordinates (labels, ...) are shared
    out = InstanceData(metainfo=instances.metainfo)
    for key, value in instances.items():
        if key == 'bboxes':
            value = rescale_boxes(value, factor, new_shape)
        elif key == 'masks':
            value = rescale_masks(value, old_shape, new_shape, mask_pad_to, mask_pad_value)
        out.set_field(value, key)
    return out
