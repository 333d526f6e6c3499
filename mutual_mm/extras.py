"""Which optional host libraries this process can use.

The core of mutual_mm needs only torch, mmengine and mmcv's Python parts (the
``mmcv-lite`` wheel will do): the slim layers (:mod:`mutual_mm.ops`), the hook
(:mod:`mutual_mm.engine`), the image-classifier family, BN calibration, the lookup
table and export. What the host libraries bring, and the modules that import them:

================  ==============================================================
extra             what it brings
================  ==============================================================
``mmdet``         (needs mmcv's compiled operators) the detector family, slim
                  ResNet / MobileNetV2 backbones with mmdet's names, detection
                  views made from the batch
``mmaction``      the recognizer families, the slim 3D backbones (SlowOnly,
                  SlowFast, X3D, TSN's ResNet), Charades, the max-over-clips heads
                  and the Charades mAP metric
================  ==============================================================

A package counts as available when it imports: mmdet installed next to
``mmcv-lite`` does not (its models import mmcv's compiled RoIAlign), and is then
treated as absent. Each package that holds such modules imports them under
``if available(...)``; nothing else in mutual_mm asks.
"""
import functools
import importlib

# what to import to know that an extra works (a package's top-level import can
# succeed where its models cannot, e.g. mmdet without mmcv's compiled operators)
_PROBES = {
    'mmdet': 'mmdet.models',
    'mmaction': 'mmaction.models',
}

WHAT_EXTRAS_BRING = {
    'mmdet': 'detection (Mask R-CNN with slim ResNet / MobileNetV2 / VGG backbones); '
             'needs mmcv with its compiled operators',
    'mmaction': 'video recognition (SlowOnly, SlowFast, X3D, TSN, Charades, AVA)',
}


@functools.lru_cache(maxsize=None)
def available(extra: str) -> bool:
    """Whether the optional host library ``extra`` (``'mmdet'`` or
    ``'mmaction'``) imports in this process."""
    if extra not in _PROBES:
        raise ValueError(f'unknown extra {extra!r}; valid: {sorted(_PROBES)}')
    try:
        importlib.import_module(_PROBES[extra])
    except ImportError:
        return False
    return True


def require(extra: str, what: str) -> None:
    """Raise a clear ImportError when ``what`` needs the absent ``extra``."""
    if not available(extra):
        raise ImportError(f'{what} needs {extra} ({WHAT_EXTRAS_BRING[extra]}), which '
                          'does not import in this environment; install the stack of '
                          'README "Supported versions"')
