"""Image classifiers (:class:`~mutual_mm.models.MutualImageClassifier`, the
ImageNet pre-training of the slim backbones)."""
from ..models.classifiers import MutualImageClassifier
from .base import HOSTS, HostAdapter
from .views import refuse_frames, resize_last_two, square_or_pair


@HOSTS.register_module()
class ClassifierHost(HostAdapter):
    """``head`` reads the backbone's last output and returns the logits."""
    host_types = (MutualImageClassifier, )
    consumer_names = ('head', )
    logits_name = 'head'
    metric_hints = ('top1', 'acc')
    feature_part = ('backbone', )

    def scores(self, inputs, data_samples=None):
        return self.model(inputs, mode='tensor')

    def predictions(self, scores, data_samples):
        return self.model.predictions(scores, data_samples)

    def check_batch_views(self, frames=None) -> None:
        refuse_frames(self.name, frames)

    def batch_view(self, batch: dict, scale, frames):
        refuse_frames(self.name, frames)
        return dict(batch, inputs=resize_last_two(batch['inputs'], square_or_pair(scale)))
