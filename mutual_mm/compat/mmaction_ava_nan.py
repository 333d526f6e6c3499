"""mmaction2 1.2.0's AVA metric under numpy >= 2.

``mmaction/evaluation/functional/ava_evaluation/metrics.py`` returns ``np.NAN``
as the average precision of a class that has detections but no ground truth
(``compute_precision_recall`` gives ``None, None`` then). numpy 2 removed the
``NAN`` alias, so ``AVAMetric`` fails with ``AttributeError: module 'numpy' has
no attribute 'NAN'`` at the end of a validation whose ground truth misses any
class of the label map (a subset of AVA val, a custom set, small data).

The repair wraps that one function of that one module: ``None, None`` gives
``float('nan')`` (the value ``np.NAN`` was; ``ava_eval`` averages with
``np.nanmean``, so such classes are left out of the mAP as before); every other
input goes to mmaction's own function unchanged. Applied only where numpy lacks
``NAN``.
"""
import functools
import importlib

import numpy as np

_MODULE = 'mmaction.evaluation.functional.ava_evaluation.metrics'


def repair_mmaction_ava_nan() -> bool:
    """Make ``compute_average_precision(None, None)`` return NaN where numpy has no
    ``NAN``. Returns True if the wrapper was installed (now)."""
    if hasattr(np, 'NAN'):
        return False
    try:
        metrics = importlib.import_module(_MODULE)
    except ImportError:
        return False
    original = metrics.compute_average_precision
    if getattr(original, '_mutual_mm_repaired', False):
        return False

    @functools.wraps(original)
    def compute_average_precision(precision, recall):
        if precision is None and recall is None:
            return float('nan')  # what np.NAN was
        return original(precision, recall)

    compute_average_precision._mutual_mm_repaired = True
    metrics.compute_average_precision = compute_average_precision
    return True
