"""Detectors: mmdet's two-stage/single-stage detectors, and mmaction's AVA
models (mmdet ``FastRCNN`` with an action RoI head)."""
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.models.detectors import BaseDetector

from .base import HOSTS, HostAdapter
from .detection_views import detection_batch_view
from .views import refuse_frames


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
