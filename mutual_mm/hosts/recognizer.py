"""Action recognizers of mmaction2: 3D (SlowOnly, SlowFast, X3D) and 2D (TSN:
segments folded into the batch, averaged by the head)."""
from mmaction.models.recognizers import BaseRecognizer, Recognizer2D

from .base import HOSTS, HostAdapter
from .views import resize_last_two, square_or_pair, take_frames


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

    #: the frame axis of a preprocessed batch: (N, views, C, T, H, W)
    frame_dim = 3

    def scores(self, inputs, data_samples=None):
        return self.model(inputs, mode='tensor', stage='head')

    def predictions(self, scores, data_samples):
        # the head's own post-processing: views averaged as its test_cfg says
        return self.model.cls_head.predict_by_feat(scores, data_samples)

    def batch_view(self, batch: dict, scale, frames):
        """Frames spread uniformly over the clip (MultiResolution's rule), then a
        fixed-size bilinear resize; labels unchanged."""
        inputs = take_frames(batch['inputs'], self.frame_dim, frames)
        return dict(batch, inputs=resize_last_two(inputs, square_or_pair(scale)))


@HOSTS.register_module()
class Recognizer2DHost(RecognizerHost):
    """TSN and other 2D recognizers: segments folded into the batch by the
    recognizer, so a view's frames are its segments: (N, segments, C, H, W)."""
    host_types = (Recognizer2D, )
    frame_dim = 1
