"""mmaction2 1.2.0 imports ``importlib_metadata`` without declaring it.

``mutual_mm`` declares the dependency (setup.py), so normally nothing happens here.
Where it is still missing, the standard library's ``importlib.metadata`` provides
the two names mmaction uses (``distribution``, ``PackageNotFoundError``), so it
stands in under the backport's name.
"""
import importlib
import sys


def repair_importlib_metadata() -> bool:
    """Alias ``importlib.metadata`` as ``importlib_metadata`` if the backport is
    missing. Returns True if the alias was installed."""
    if 'importlib_metadata' in sys.modules:
        return False
    try:
        importlib.import_module('importlib_metadata')
        return False
    except ImportError:
        import importlib.metadata as stdlib_metadata
        sys.modules['importlib_metadata'] = stdlib_metadata
        return True
