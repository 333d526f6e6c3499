"""Image classifiers (:class:`~mutual_mm.models.MutualImageClassifier`, the
ImageNet pre-training of the slim backbones)."""
from ..models.classifiers import MutualImageClassifier
from .base import HOSTS, HostAdapter


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
