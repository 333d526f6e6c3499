"""Narrow repairs of the published OpenMMLab stack this package is pinned to.

Each repair lives in its own module, checks that the defect is really present
before touching anything, and is idempotent. They run when ``mutual_mm`` is
imported, which happens through ``custom_imports`` while mmengine reads a config,
so before ``mim train`` / ``tools/train.py`` builds a model or resumes a run.

* :mod:`.mmaction_drn`: mmaction2 1.2.0 from PyPI lacks
  ``mmaction/models/localizers/drn/`` that its ``localizers/__init__.py`` imports.
* :mod:`.importlib_metadata`: mmaction2 imports the undeclared ``importlib_metadata``.
* :mod:`.torch_load`: torch >= 2.6 loads with ``weights_only=True`` by default, which
  rejects mmengine's own classes stored in resume checkpoints.
* :mod:`.mmaction_ava_nan`: mmaction2's AVA metric returns ``np.NAN``, which numpy 2
  removed (the AP of a class without ground truth).
* :mod:`.sample_errors`: a sample whose file cannot be read fails naming no file;
  the error gets a note with the data set, the sample's index and its file.

Not applied on import: :mod:`.mmdeploy_onnx`, MMDeploy 1.3.1 (an optional extra)
on this torch, repaired only for the duration of a detector's ONNX export.
"""
from .importlib_metadata import repair_importlib_metadata
from .mmaction_ava_nan import repair_mmaction_ava_nan
from .mmaction_drn import repair_mmaction_drn
from .sample_errors import repair_sample_errors
from .torch_load import MMENGINE_CHECKPOINT_GLOBALS, repair_torch_load


def apply_stack_repairs() -> None:
    """Apply every repair (safe to call more than once)."""
    repair_importlib_metadata()
    repair_mmaction_drn()
    repair_torch_load()
    repair_mmaction_ava_nan()  # imports mmaction.evaluation: after the DRN repair
    repair_sample_errors()


__all__ = [
    'apply_stack_repairs', 'repair_importlib_metadata', 'repair_mmaction_drn',
    'repair_torch_load', 'repair_mmaction_ava_nan', 'repair_sample_errors',
    'MMENGINE_CHECKPOINT_GLOBALS'
]
