"""mmaction2 1.2.0 as published lacks ``mmaction.models.localizers.drn``.

Both its wheel and its sdist omit the folder ``mmaction/models/localizers/drn/``
while ``mmaction/models/localizers/__init__.py`` does ``from .drn.drn import DRN``,
so ``import mmaction.models`` (and so building any mmaction model) fails with
``ModuleNotFoundError``. The repair registers stand-in modules for the missing
package in ``sys.modules``; its ``DRN`` is a registered model that raises a clear
error when built, so every other mmaction model builds and a config that really
asks for DRN says why it cannot run.

The check looks at the installed files, never at ``import mmaction.models``: that
import is exactly what fails. If a fixed mmaction2 release ships the folder, the
repair does nothing.
"""
import importlib.util
import os.path as osp
import sys
import types

_PKG = 'mmaction.models.localizers.drn'
_MOD = _PKG + '.drn'


class DRN:
    """Stand-in for mmaction2's DRN localizer, absent from the 1.2.0 release."""

    def __init__(self, *args, **kwargs):
        raise ImportError(
            'DRN (mmaction.models.localizers.drn) is missing from the mmaction2 '
            '1.2.0 release on PyPI, so it cannot be built. Install mmaction2 from '
            'its source repository to use DRN.')


def _drn_folder_missing() -> bool:
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return False  # mmaction2 is not installed: nothing to repair
    root = list(spec.submodule_search_locations)[0]
    return not osp.isdir(osp.join(root, 'models', 'localizers', 'drn'))


def repair_mmaction_drn() -> bool:
    """Install the stand-in modules if the installed mmaction lacks them.

    Returns True if the stand-ins were (or already are) installed.
    """
    if _MOD in sys.modules:
        return getattr(sys.modules[_MOD], '__mutual_mm_stub__', False)
    if not _drn_folder_missing():
        return False
    package = types.ModuleType(_PKG)
    package.__path__ = []  # a package, so `from .drn.drn import DRN` resolves
    package.__mutual_mm_stub__ = True
    module = types.ModuleType(_MOD)
    module.__mutual_mm_stub__ = True
    module.DRN = DRN
    package.drn = module
    sys.modules[_PKG] = package
    sys.modules[_MOD] = module
    # Registered so that a config naming DRN fails with the explanation above,
    # not with "DRN is not in the model registry".
    from mmaction.registry import MODELS
    if 'DRN' not in MODELS.module_dict:
        MODELS.register_module(name='DRN', module=DRN)
    return True
