"""Detectors: mmdet's two-stage/single-stage detectors, and mmaction's AVA
models (mmdet ``FastRCNN`` with an action RoI head)."""
from mmdet.models.detectors import BaseDetector

from .base import HOSTS, HostAdapter


@HOSTS.register_module()
class DetectorHost(HostAdapter):
    """The neck (else the heads) reads the backbone's features; no class logits
    to distill (sub-networks learn from the ground truth, paper §4.2.1); exported:
    backbone + neck (mmcv's RoIAlign and NMS are not standard layers)."""
    host_types = (BaseDetector, )
    consumer_names = ('neck', 'rpn_head', 'roi_head', 'bbox_head')
    metric_hints = ('bbox_mAP', 'segm_mAP', 'mAP')

    def scores(self, inputs, data_samples=None):
        # the tensor forward of mmdet (RPN and RoI heads on every proposal)
        return self.model(inputs, data_samples, mode='tensor')

    def exported(self, inputs):
        return self.features(inputs)
