"""Action recognizers of mmaction2: 3D (SlowOnly, SlowFast, X3D) and 2D (TSN:
segments folded into the batch, averaged by the head)."""
from mmaction.models.recognizers import BaseRecognizer

from .base import HOSTS, HostAdapter


@HOSTS.register_module()
class RecognizerHost(HostAdapter):
    """``cls_head`` (after the neck, if any) holds the class logits; the tensor
    forward runs up to the head. Views act on the data (size, and frames: the
    clip's, or the segments of a segment-sampled clip, see
    :class:`~mutual_mm.datasets.MultiResolution`), except for a backbone that
    makes its own (SlowFast's Slow input)."""
    host_types = (BaseRecognizer, )
    consumer_names = ('neck', 'cls_head')
    logits_name = 'cls_head'
    metric_hints = ('mAP', 'top1', 'acc')
    feature_part = ('backbone', 'neck')

    def features(self, inputs):
        feats, _ = self.model.extract_feat(inputs)
        return feats

    def scores(self, inputs, data_samples=None):
        return self.model(inputs, mode='tensor', stage='head')
