"""The core runs where only torch, mmengine and mmcv's Python parts exist
(mmcv-lite): without mmdet, mmaction2, MMDeploy and mmcv's compiled operators,
``import mutual_mm`` works, the core's parts register, the extras' parts do not,
and every test marked ``core`` passes (a new process, tests/without_extras.py)."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WITHOUT_EXTRAS = osp.join(ROOT, 'tests', 'without_extras.py')

REGISTRY_PROBE = '''
import sys
import mutual_mm
from mmengine.registry import HOOKS, MODELS, TRANSFORMS
from mutual_mm.extras import available, require
assert not available('mmdet') and not available('mmaction')
core = {'SlimMobileNetV1': MODELS, 'SlimVGG': MODELS, 'MutualImageClassifier': MODELS,
        'MutualLearningHook': HOOKS, 'MultiResolution': TRANSFORMS}
assert all(name in registry for name, registry in core.items()), core
for name in ('SlimResNet', 'SlimMobileNetV2', 'SlimResNet3dSlowOnly', 'SlimX3D'):
    assert name not in MODELS, name
loaded = [m for m in ('mmdet', 'mmaction', 'mmdeploy', 'mmcv._ext')
          if sys.modules.get(m) is not None]
assert not loaded, loaded
try:
    require('mmdet', 'SlimResNet')
except ImportError as e:
    print(e)
'''


def run_without_extras(*args, timeout=900):
    return subprocess.run([sys.executable, WITHOUT_EXTRAS, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_import_registers_the_core_and_names_the_missing_extra(tmp_path):
    probe = tmp_path / 'probe.py'
    probe.write_text(REGISTRY_PROBE)
    result = run_without_extras('--script', str(probe))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'SlimResNet needs mmdet' in result.stdout


def core_test_files():
    """The test modules marked ``core`` (their imports must not need an extra)."""
    tests = osp.join(ROOT, 'tests')
    return sorted(osp.join('tests', name) for name in os.listdir(tests)
                  if name.startswith('test_') and name.endswith('.py')
                  and 'pytestmark = pytest.mark.core' in open(osp.join(tests, name)).read())


def test_the_core_tests_pass_without_the_extras():
    files = core_test_files()
    assert len(files) >= 4, files
    result = run_without_extras('-q', '-m', 'core', '-p', 'no:cacheprovider', *files)
    tail = result.stdout[-4000:]
    assert result.returncode == 0, tail
    assert ' passed' in tail and ' failed' not in tail, tail
