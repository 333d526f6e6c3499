"""mutual_mm: MutualNet (train once, run at any width x resolution) for
MMDetection and MMAction2.

Importing the package (``custom_imports=dict(imports=['mutual_mm'])`` in a config)
first repairs the pinned OpenMMLab stack (see :mod:`mutual_mm.compat`), then
registers the package's components in mmengine's root registries (see
:mod:`mutual_mm.registry`). The core needs torch, mmengine and mmcv's Python
parts only; the parts that need mmdet or mmaction2 register where those import
(:mod:`mutual_mm.extras`).
"""
from .compat import apply_stack_repairs

apply_stack_repairs()

from . import registry  # noqa: E402,F401
from . import datasets, deploy, engine, hosts, models, ops  # noqa: E402,F401
from .datasets import classification  # noqa: E402,F401  (classifier data, metric)
from .extras import available  # noqa: E402

if available('mmaction'):
    from . import evaluation  # noqa: F401
from .hosts import get_model_width, model_at_width, set_model_width  # noqa: E402

__version__ = '0.1.0'
