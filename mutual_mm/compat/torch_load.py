"""Resuming mmengine 0.10.7 checkpoints under torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls
``torch.load`` without the argument, and the ``message_hub`` state that
``CheckpointHook`` saves for resuming holds mmengine's ``HistoryBuffer`` objects
(with numpy arrays and scalars inside), so ``runner.resume`` fails with
``WeightsUnpickler error: Unsupported global: GLOBAL
mmengine.logging.history_buffer.HistoryBuffer``.

The repair allow-lists exactly the classes such a checkpoint contains with
``torch.serialization.add_safe_globals``. ``weights_only`` stays on for every load,
so a checkpoint carrying any other class is still refused.

One more global is needed: ``HistoryBuffer.__getstate__`` stores its statistics
methods (``HistoryBuffer.min`` ...), which pickle protocol 2 (torch.save's default)
writes as ``getattr(HistoryBuffer, 'min')``. Allow-listing ``builtins.getattr``
itself would let a crafted checkpoint read any attribute of any allowed object, so
the name ``builtins.getattr`` is bound to :func:`_history_buffer_getattr` instead,
which resolves only HistoryBuffer's registered statistics methods.
"""
import pickle
from typing import List

import numpy as np
import torch


def _numpy_globals() -> List[object]:
    """numpy classes a pickled float/int history holds (ndarray reconstruction,
    dtypes, and numpy scalars as stored by ``HistoryBuffer.statistics``)."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in (
        np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
        np.uint8, np.bool_)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


_DEFAULT_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj, name):
    """The only ``getattr`` a weights-only load may perform: fetching a
    registered statistics method of mmengine's ``HistoryBuffer``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    # The defaults are only put into the class-level dict by the first
    # HistoryBuffer() call, which a fresh process may not have made yet.
    allowed = _DEFAULT_STATISTICS.union(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'weights-only load refused getattr({obj!r}, {name!r}): mutual_mm only '
        'allows getattr(HistoryBuffer, <statistics method>) as found in mmengine '
        'resume checkpoints')


def _mmengine_globals() -> List[object]:
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')]


MMENGINE_CHECKPOINT_GLOBALS: List[object] = []


def repair_torch_load() -> bool:
    """Allow-list mmengine's checkpoint classes for ``weights_only`` loading.

    Returns True if anything was added. A torch without ``add_safe_globals``
    (< 2.4) loads everything anyway, so nothing is needed there.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None or MMENGINE_CHECKPOINT_GLOBALS:
        return False
    MMENGINE_CHECKPOINT_GLOBALS.extend(_mmengine_globals() + _numpy_globals())
    add(MMENGINE_CHECKPOINT_GLOBALS)
    return True
