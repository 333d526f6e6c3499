"""benchmarks/gpu_check.sh on a simulated bare GPU machine, in its CPU mode: a new
virtual environment that has only what the lent machine's image has (torch, numpy,
opencv, onnx, onnxruntime, pytest: linked from this environment) gets the wheels
of benchmarks/gpu_wheels.sh (downloaded for this Python) installed with no index,
and the check runs end to end: no mmdet, mmaction2 or compiled mmcv there."""
import importlib.metadata as metadata
import json
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import venv

from packaging.requirements import Requirement

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# what the GPU machine's image holds (README of the device tool)
IMAGE = ('torch', 'numpy', 'opencv-python', 'onnx', 'onnxruntime', 'pytest')


def with_requirements(names):
    """The installed distributions ``names`` and everything they require."""
    found, todo = {}, list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        name = dist.metadata['Name'].lower()
        if name in found:
            continue
        found[name] = dist
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({'extra': ''}):
                todo.append(req.name)
    return found.values()


def bare_python(root):
    """A Python whose packages are only the image's: a venv, plus a .pth naming a
    folder of links to those distributions' files in this environment."""
    venv.create(root / 'venv', with_pip=True)
    image = root / 'image'
    image.mkdir()
    site = sysconfig.get_paths()['purelib']
    for dist in with_requirements(IMAGE):
        for top in {f.parts[0] for f in dist.files or () if f.parts[0] != '..'}:
            if osp.exists(osp.join(site, top)) and not (image / top).exists():
                (image / top).symlink_to(osp.join(site, top))
    purelib = subprocess.run([str(root / 'venv' / 'bin' / 'python'), '-c',
                              'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(osp.join(purelib, 'image.pth'), 'w') as f:
        f.write(str(image) + '\n')
    return str(root / 'venv' / 'bin' / 'python')


def test_gpu_check_runs_on_a_bare_machine_in_cpu_mode(tmp_path):
    python = bare_python(tmp_path)
    absent = subprocess.run([python, '-c', 'import mmengine'], capture_output=True)
    assert absent.returncode != 0  # the bare Python really lacks the stack
    wheels = tmp_path / 'wheels'
    version = f'{sys.version_info.major}.{sys.version_info.minor}'
    subprocess.run(['bash', 'benchmarks/gpu_wheels.sh', str(wheels), version], cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    out = tmp_path / 'out'
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    result = subprocess.run(['bash', 'benchmarks/gpu_check.sh', '--python', python,
                             '--wheels', str(wheels), str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    environment = json.loads((out / 'environment.json').read_text())
    assert environment['device'] == 'cpu'
    assert not environment['mmdet'] and not environment['mmaction']
    tests = (out / 'tests.txt').read_text()
    assert ' passed' in tests and ' failed' not in tests, tests[-2000:]
    table3 = json.loads((out / 'table3.json').read_text())
    assert [(r['arch'], r['batch']) for r in table3['runs']] == [('mbv1', 2), ('r50', 2)]
    for run in table3['runs']:
        assert run['hooked_s'] > 0 and run['plain_s'] > 0 and 1 < run['flops_expected'] < 4
    skipped = (out / 'skipped.txt').read_text()
    assert 'no CUDA device' in skipped and 'needs CUDA, mmdet and mmaction2' in skipped
