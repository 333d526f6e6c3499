"""Where mutual_mm registers its components, and why.

mutual_mm registers everything in **mmengine's root registries** (``MODELS``,
``HOOKS``, ``TRANSFORMS``, ``DATASETS``, ``METRICS``). mmdet's, mmaction's (and
mmpretrain's) registries are children of these roots, and mmengine looks a plain
``type`` name up in the default scope's registry first and then in its parents.
So one registration makes ``dict(type='SlimResNet')`` resolve under
``default_scope='mmdet'`` and ``default_scope='mmaction'`` alike, with no scope
prefix and no second copy of the class in either codebase.

Consequences to keep in mind:

* names must not collide with a class of mmdet/mmaction (their own registry
  would win), hence the ``Slim``/``Mutual`` prefixes;
* components that build nested configs (e.g. ``MultiResolution`` building
  ``Resize``) build them through these root registries, which mmengine resolves
  in the *current default scope*: the host library's own ``Resize`` is used.
"""
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS

__all__ = ['MODELS', 'HOOKS', 'TRANSFORMS', 'DATASETS', 'METRICS']
