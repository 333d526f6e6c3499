"""Host model families: what MutualNet must know about each kind of model
(detectors, action recognizers, image classifiers). A new family is one file
here: a :class:`HostAdapter` registered with ``HOSTS``."""
from .base import HOSTS, HostAdapter, HostForward, host_class_of, host_of
from ..extras import available
from .classifier import ClassifierHost
from .views import BackboneViews, BatchViews, PipelineViews, find_multi_resolution
from .width import get_model_width, model_at_width, prepare_consumers, set_model_width

__all__ = ['HOSTS', 'HostAdapter', 'HostForward', 'host_of', 'host_class_of',
           'ClassifierHost', 'PipelineViews',
           'BatchViews', 'BackboneViews',
           'find_multi_resolution', 'set_model_width', 'get_model_width',
           'model_at_width', 'prepare_consumers']

if available('mmdet'):
    from .detector import DetectorHost
    __all__ += ['DetectorHost']

if available('mmaction'):
    from .recognizer import Recognizer2DHost, RecognizerHost
    __all__ += ['RecognizerHost', 'Recognizer2DHost']
