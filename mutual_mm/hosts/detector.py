"""Detectors: mmdet's two-stage/single-stage detectors, and mmaction's AVA
models (mmdet ``FastRCNN`` with an action RoI head)."""
import weakref
from typing import Optional

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.models.detectors import BaseDetector
from mmdet.models.roi_heads import StandardRoIHead
from torch import nn

from .base import HOSTS, HostAdapter, HostForward, count_flops
from .detection_views import detection_batch_view
from .views import refuse_frames


@HOSTS.register_module()
class DetectorHost(HostAdapter):
    """The neck (else the heads) reads the backbone's features; no class logits
    to distill (sub-networks learn from the ground truth, paper §4.2.1). The
    whole detector goes to ONNX through MMDeploy's rewritten ``predict``
    (:mod:`mutual_mm.deploy.mmdeploy_export`); ``'features'`` is backbone +
    neck. Two-stage detectors take ``proposals`` (the RPN's
    ``test_cfg.max_per_img``) as a test-time subnet axis."""
    host_types = (BaseDetector, )
    consumer_names = ('neck', 'rpn_head', 'roi_head', 'bbox_head')
    metric_hints = ('bbox_mAP', 'segm_mAP', 'mAP')
    onnx_route = 'mmdeploy'
    onnx_parts = ('model', 'features')

    def scores(self, inputs, data_samples=None):
        # the tensor forward of mmdet (RPN and RoI heads on every proposal)
        return self.model(inputs, data_samples, mode='tensor')

    def exported(self, inputs):
        # the static export converts the slim layers it meets here: all of
        # them sit in backbone + neck (the heads are stock layers)
        return self.features(inputs)

    def deployed(self, inputs, data_samples=None):
        return self.model.predict(inputs, data_samples)

    @torch.no_grad()
    def model_flops(self, inputs, data_samples=None) -> float:
        """FLOPs of the detector as it runs at test time on this input:
        backbone + neck and the dense heads (RPN, or a single-stage head) on
        their feature maps, traced; the RoI heads' FLOPs per region (traced on
        one region of their RoIAlign's size) times the regions this input
        really sends through them: the proposals the RPN keeps (box head) and
        the final detections (mask head). RoIAlign, NMS and box decoding are
        not counted (nor by mmdet's get_flops.py). Detectors that read their
        proposals from the data (AVA's FastRCNN): the tensor forward on them."""
        model = self.model
        if getattr(model, 'roi_head', None) is not None and \
                getattr(model, 'rpn_head', None) is None:
            return super().model_flops(inputs, data_samples)
        flops = count_flops(HostForward(self, 'features'), inputs)
        feats = self.features(inputs)
        for name in ('rpn_head', 'bbox_head'):
            head = getattr(model, name, None)
            if isinstance(head, nn.Module):
                flops += count_flops(head, feats)
        roi_head = getattr(model, 'roi_head', None)
        if roi_head is None:
            return flops
        if not isinstance(roi_head, StandardRoIHead):
            raise NotImplementedError(
                f'{type(self).__name__}: whole-model FLOPs are counted for '
                f'StandardRoIHead (Faster/Mask R-CNN), not {type(roi_head).__name__}; '
                "count backbone + neck instead (flops_scope='features')")
        proposals = model.rpn_head.predict(feats, data_samples, rescale=False)
        detections = roi_head.predict(feats, proposals, data_samples, rescale=False)
        flops += len(proposals[0]) * _region_flops(roi_head.bbox_head,
                                                   roi_head.bbox_roi_extractor)
        if roi_head.with_mask:
            flops += len(detections[0]) * _region_flops(roi_head.mask_head,
                                                        roi_head.mask_roi_extractor)
        return flops

    # ------------------------------------------------------ test-time knobs
    def set_proposals(self, proposals: Optional[int]) -> None:
        """The RPN keeps ``proposals`` per image at test time
        (``rpn_head.test_cfg.max_per_img``; None: the config's own)."""
        rpn = getattr(self.model, 'rpn_head', None)
        test_cfg = getattr(rpn, 'test_cfg', None)
        if test_cfg is None or 'max_per_img' not in test_cfg:
            self.refuse_proposals(self.name, proposals)
            return
        stock = _STOCK_PROPOSALS.setdefault(rpn, test_cfg['max_per_img'])
        test_cfg['max_per_img'] = stock if proposals is None else int(proposals)

    @classmethod
    def set_proposals_cfg(cls, model_cfg: dict, proposals: Optional[int]) -> None:
        """``model.test_cfg.rpn.max_per_img`` of a detector's config."""
        rpn = (model_cfg.get('test_cfg') or {}).get('rpn')
        if rpn is None or 'max_per_img' not in rpn:
            cls.refuse_proposals(str(model_cfg.get('type')), proposals)
        elif proposals is not None:
            rpn['max_per_img'] = int(proposals)

    def check_batch_views(self, frames=None) -> None:
        """Views made from the batch need mmdet's image batches: AVA models
        (clips, ``ActionDataPreprocessor``) train with MultiResolution."""
        refuse_frames(self.name, frames)
        preprocessor = self.model.data_preprocessor
        if not isinstance(preprocessor, DetDataPreprocessor):
            raise NotImplementedError(
                f'{type(self).__name__}: views made from the batch need mmdet\'s '
                f'DetDataPreprocessor; {self.name} has '
                f'{type(preprocessor).__name__}: put MultiResolution in the train '
                'pipeline instead')

    def batch_sizes(self, batch: dict) -> str:
        """The padded input shape and the images' unpadded ``img_shape``s."""
        img_shapes = sorted({tuple(s.img_shape) for s in batch['data_samples']})
        return f'{super().batch_sizes(batch)}, img_shape {", ".join(map(str, img_shapes))}'

    def batch_view(self, batch: dict, scale, frames):
        """What ``Resize(scale, keep_ratio=True)`` of the original images, then
        the stock packing and preprocessing, would have delivered: see
        :func:`~mutual_mm.hosts.detection_views.detection_batch_view`."""
        refuse_frames(self.name, frames)
        p = self.model.data_preprocessor
        return detection_batch_view(batch, scale, pad_size_divisor=p.pad_size_divisor,
                                    pad_value=p.pad_value, pad_mask=p.pad_mask,
                                    mask_pad_value=p.mask_pad_value)


# the RPN's own proposal count, before a subnet first changed it
_STOCK_PROPOSALS = weakref.WeakKeyDictionary()


def _region_flops(head: nn.Module, extractor: nn.Module) -> float:
    """FLOPs of ``head`` on one region of ``extractor``'s output size."""
    size = extractor.roi_layers[0].output_size
    region = torch.zeros((1, extractor.out_channels) + tuple(size),
                         device=next(head.parameters()).device)
    return count_flops(head, region)
