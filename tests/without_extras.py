"""Run pytest, or a script, as if mmdet, mmaction2, MMDeploy and mmcv's compiled
operators were not installed (the stack of a bare machine with ``mmcv-lite``):

    python tests/without_extras.py -m core tests/      # pytest arguments
    python tests/without_extras.py --script probe.py ARGS   # a script and its arguments

An absent package looks like this to ``import`` and ``importlib.util.find_spec``:
its name maps to None in ``sys.modules``. tests/test_core_only.py runs the core's
tests this way, in a new process."""
import runpy
import sys

ABSENT = ('mmdet', 'mmaction', 'mmdeploy', 'mmcv._ext')


def main(argv):
    for name in ABSENT:
        sys.modules[name] = None
    if argv[:1] == ['--script']:
        sys.argv = argv[1:]
        runpy.run_path(sys.argv[0], run_name='__main__')
        return 0
    import pytest
    return pytest.main(argv)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
