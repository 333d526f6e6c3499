"""The whole detector in ONNX, through MMDeploy, and its outputs back in mmdet's
terms.

MMDeploy 1.3.1 (an optional extra: ``pip install 'mutual_mm[mmdeploy]'``, see
``requirements/mmdeploy.txt``) rewrites mmdet's ``predict`` (RPN proposals,
RoI heads, NMS, mask pasting) into a traceable graph. :func:`export_detector_onnx`
runs its ``export`` on a static subnet (:func:`~mutual_mm.deploy.export.export_subnet`)
at opset 16, where that graph's RoIAlign, NMS and grid sampling are the standard
ONNX operators ``RoiAlign``, ``NonMaxSuppression`` and ``GridSample`` (with the
repairs of :mod:`mutual_mm.compat.mmdeploy_onnx`): the file runs in stock ONNX
Runtime without a custom-operator library, MMDeploy, mmcv or PyTorch.

The graph takes one preprocessed image (normalized, padded as the model's data
preprocessor pads; its height and width are dynamic) and returns ``dets``
(1, N, 5: x1, y1, x2, y2, score in input pixels), ``labels`` (1, N) and, for
instance segmentation, ``masks`` (1, N, H, W: booleans pasted at the input's
size). The post-processing settings are the model's own ``test_cfg``
(score threshold, NMS IoU, detections per image, RPN proposals).
:func:`detections_to_instances` turns them into mmdet's ``pred_instances``
in the original image's coordinates as MMDeploy's ``End2EndModel`` does: boxes
divided by the scale factor, masks cropped to the image and resized (nearest)
to the original size; mmdet instead pastes each mask at the original size, so
masks can differ at their borders (measured: docs/benchmarks.md).

Detectors covered: mmdet's two-stage (Faster/Mask R-CNN) and single-stage
detectors that MMDeploy 1.3.1 supports for ONNX Runtime; tested here: Mask
R-CNN and Faster R-CNN.
"""
import logging
import math
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch import nn

from ..compat.mmdeploy_onnx import MIN_OPSET, mmdeploy_onnx_export

OPSET = MIN_OPSET
INPUT_NAME = 'input'


def _need_mmdeploy():
    try:
        import mmdeploy  # noqa: F401
    except ImportError:
        raise ImportError(
            'exporting a whole detector to ONNX needs MMDeploy 1.3.1: pip install '
            "--no-deps mmdeploy==1.3.1 aenum multiprocess dill prettytable "
            "(or 'mutual_mm[mmdeploy]'); backbone + neck alone need no MMDeploy: "
            "--onnx-part features") from None
    from mmdeploy.codebase import import_codebase
    from mmdeploy.utils import Codebase, get_root_logger
    import_codebase(Codebase.MMDET)  # registers MMDeploy's mmdet rewriters
    # its INFO lines name the temporary files of an export; its logger's stream
    # is whatever sys.stdout was when it was first made (a caller's redirect)
    get_root_logger().setLevel(logging.ERROR)


def output_names(model: nn.Module) -> List[str]:
    with_mask = bool(getattr(getattr(model, 'roi_head', None), 'with_mask', False))
    return ['dets', 'labels'] + (['masks'] if with_mask else [])


def deploy_cfg(model: nn.Module) -> Config:
    """MMDeploy's deploy config for ONNX Runtime, its post-processing taken from
    the model's test_cfg so that the graph keeps the config's settings."""
    roi_head = getattr(model, 'roi_head', None)
    test_cfg = roi_head.test_cfg if roi_head is not None else model.bbox_head.test_cfg
    max_per_img = int(test_cfg.get('max_per_img', 100))
    names = output_names(model)
    dynamic = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
               'dets': {0: 'batch', 1: 'detections'},
               'labels': {0: 'batch', 1: 'detections'},
               'masks': {0: 'batch', 1: 'detections', 2: 'height', 3: 'width'}}
    return Config(dict(
        onnx_config=dict(type='onnx', export_params=True, keep_initializers_as_inputs=False,
                         opset_version=OPSET, input_names=[INPUT_NAME], output_names=names,
                         input_shape=None, optimize=False,
                         dynamic_axes={k: v for k, v in dynamic.items()
                                       if k in names + [INPUT_NAME]}),
        codebase_config=dict(
            type='mmdet', model_type='end2end',
            task='InstanceSegmentation' if 'masks' in names else 'ObjectDetection',
            post_processing=dict(
                # the fallback of heads without a score_thr of their own: the RPN
                # (mmdet's keeps its proposals whatever their objectness; 0.05
                # here dropped the weak ones and cost 0.02 bbox mAP at 128x38);
                # the box head reads score_thr from the model's test_cfg
                score_threshold=0.0,
                confidence_threshold=0.005,
                iou_threshold=float(test_cfg.get('nms', {}).get('iou_threshold', 0.5)),
                # mmdet keeps max_per_img over all classes after per-class NMS
                max_output_boxes_per_class=max_per_img, keep_top_k=max_per_img,
                pre_top_k=5000, background_label_id=-1,
                export_postprocess_mask=True)),
        backend_config=dict(type='onnxruntime')))


@torch.no_grad()
def export_detector_onnx(model: nn.Module, inputs: torch.Tensor, data_samples,
                         path: str) -> str:
    """Write ``model`` (a static detector, eval mode) as one ONNX file at
    ``path``; ``inputs`` (1, 3, H, W) and ``data_samples`` are one preprocessed
    example (its size only shapes the trace: height and width are dynamic)."""
    _need_mmdeploy()
    from mmdeploy.apis.onnx import export
    cfg = deploy_cfg(model)
    onnx_cfg = cfg['onnx_config']
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp, mmdeploy_onnx_export(model), \
            warnings.catch_warnings():
        # tracing MMDeploy's rewritten predict warns about every shape it reads
        # and about index operators with negative indices; the graph is checked
        # against PyTorch after export (check_subnet_onnx) instead
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='Exporting aten::index operator')
        # mmdet's own deprecation notes, raised by the calls MMDeploy's rewrites make
        warnings.filterwarnings('ignore', message='.*(anchor_generator|grid_anchors)',
                                category=UserWarning)
        prefix = osp.join(tmp, 'end2end')
        export(model.eval(), inputs.cpu(), prefix, backend='onnxruntime',
               input_metas=dict(data_samples=data_samples, mode='predict'),
               context_info=dict(deploy_cfg=cfg), opset_version=OPSET,
               input_names=onnx_cfg['input_names'], output_names=onnx_cfg['output_names'],
               dynamic_axes=onnx_cfg['dynamic_axes'], keep_initializers_as_inputs=False)
        os.replace(prefix + '.onnx', path)
    return path


@torch.no_grad()
def rewritten_outputs(model: nn.Module, inputs: torch.Tensor, data_samples) -> List[np.ndarray]:
    """What the exported graph computes, run in PyTorch: MMDeploy's rewritten
    ``predict`` (the reference ONNX Runtime is checked against)."""
    _need_mmdeploy()
    from mmdeploy.core import RewriterContext, patch_model
    cfg = deploy_cfg(model)
    patched = patch_model(model.eval(), cfg=cfg, backend='onnxruntime')
    with RewriterContext(cfg=cfg, backend='onnxruntime', opset=OPSET), \
            mmdeploy_onnx_export():
        outputs = patched(inputs, data_samples=data_samples, mode='predict')
    return [t.cpu().numpy() for t in outputs]


def detections_to_instances(outputs: Sequence[np.ndarray], data_sample) -> InstanceData:
    """One image's graph outputs as mmdet ``pred_instances`` in the original
    image's coordinates (``data_sample``'s ``img_shape``, ``scale_factor``,
    ``ori_shape``), as MMDeploy's ``End2EndModel`` makes them."""
    dets = torch.from_numpy(np.asarray(outputs[0][0], dtype=np.float32))
    img_h, img_w = data_sample.img_shape[:2]
    ori_h, ori_w = data_sample.ori_shape[:2]
    scale_w, scale_h = data_sample.scale_factor[:2]
    boxes = dets[:, :4].clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, img_w) / scale_w
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, img_h) / scale_h
    pred = InstanceData(bboxes=boxes, scores=dets[:, 4].clone(),
                        labels=torch.from_numpy(np.asarray(outputs[1][0])).long())
    if len(outputs) > 2:
        masks = torch.from_numpy(np.asarray(outputs[2][0])).to(torch.uint8)
        masks = masks[:, :img_h, :img_w]
        if len(masks):
            size = (math.ceil(img_h / scale_h), math.ceil(img_w / scale_w))
            masks = torch.nn.functional.interpolate(masks[None], size=size)[0]
        pred.masks = masks[:, :ori_h, :ori_w].bool()
    return pred


def compare_detections(expected: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> Dict:
    """How ONNX Runtime's outputs of one image differ from the PyTorch graph's:
    detection counts, the largest box (px) and score differences, whether the
    labels are equal, and the fraction of mask pixels that differ."""
    out = dict(detections=int(expected[0].shape[1]),
               detections_onnx=int(got[0].shape[1]))
    if out['detections'] != out['detections_onnx']:
        return dict(out, same_count=False)
    e, g = expected[0][0], got[0][0]
    out.update(same_count=True,
               box_px=float(np.abs(e[:, :4] - g[:, :4]).max(initial=0.0)),
               score=float(np.abs(e[:, 4] - g[:, 4]).max(initial=0.0)),
               labels_equal=bool(np.array_equal(expected[1], got[1])))
    if len(expected) > 2:
        out['mask_pixels'] = float(np.mean(expected[2] != got[2])) if expected[2].size else 0.0
    return out


#: what ONNX Runtime may differ from the PyTorch graph it was exported from, per
#: image: the same detections and labels, boxes within 0.01 px, scores within
#: 1e-4, at most 0.1 % of the mask pixels (float32 through other kernels)
TOLERANCE = dict(box_px=1e-2, score=1e-4, mask_pixels=1e-3)


def within_tolerance(check: Dict) -> bool:
    return check['same_count'] and check.get('labels_equal', True) and all(
        check.get(k, 0.0) <= v for k, v in TOLERANCE.items())


def summarize_checks(checks: Sequence[Dict]) -> Dict:
    """The worst of per-image :func:`compare_detections` results."""
    summary = dict(images=len(checks), within_tolerance=all(map(within_tolerance, checks)),
                   same_counts=all(c['same_count'] for c in checks),
                   detections=sum(c['detections'] for c in checks))
    for key in ('box_px', 'score', 'mask_pixels'):
        values = [c[key] for c in checks if key in c]
        if values:
            summary[key] = max(values)
    summary['labels_equal'] = all(c.get('labels_equal', True) for c in checks)
    return summary
