"""The README's "Deploying one checkpoint at any budget" commands, each run as a
new process exactly as a user types them (no import of the tools or of
mutual_mm in between: an exported subnet's config must build where only its
own ``custom_imports`` brought mutual_mm in), on the demo detector config with
tiny generated data and a 2-iteration checkpoint from ``mim train``."""
import json
import os
import os.path as osp
import subprocess
import sys

import onnx
import pytest

from mutual_mm.deploy import load_table

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py')
BIN = osp.dirname(sys.executable)


def _run(args, cwd):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get('PATH', ''),
               PYTHONWARNINGS='ignore')
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, (f'{" ".join(args)} failed:\n' + result.stdout[-3000:]
                                    + result.stderr[-3000:])
    return result.stdout + result.stderr


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Tiny demo data and a 2-iteration checkpoint of the demo detector."""
    ws = tmp_path_factory.mktemp('deploy_commands')
    _run(['python', osp.join(ROOT, 'tools/make_demo_data.py'), '--images', '8', '4',
          '--videos', '2', '2'], ws)
    _run(['mim', 'train', 'mmdet', CONFIG, '--work-dir', 'work', '--cfg-options',
          'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
          'default_hooks.checkpoint.interval=2'], ws)
    return ws


def test_readme_deployment_commands_run_as_new_processes(workspace):
    ws, tool = workspace, lambda name: osp.join(ROOT, 'tools', name)
    # 1. calibration
    _run(['python', tool('calibrate_bn.py'), CONFIG, 'work/iter_2.pth', '--out',
          'calibrated.pth', '--widths', '1.0', '0.5', '--num-batches', '1'], ws)
    # 2. the lookup table over width x resolution x proposals, timed in ONNX Runtime
    out = _run(['python', tool('build_lookup_table.py'), CONFIG, 'calibrated.pth',
                '--out-dir', 'lut', '--widths', '1.0', '0.5', '--resolutions', '128x96',
                '128x58', '--proposals', '100', '20', '--latency', 'onnxruntime',
                '--threads', '1', '--latency-budgets', '10000'], ws)
    rows = load_table(str(ws / 'lut' / 'table.csv'))
    assert len(rows) == 8 and {r.subnet.proposals for r in rows} == {100, 20}
    assert all(r.latency_runtime == 'onnxruntime' and r.latency_ms > 0 for r in rows)
    assert all(r.flops > r.features_flops > 0 for r in rows)  # heads counted on top
    for row in rows:
        assert (ws / 'lut' / 'onnx' / f'{row.subnet.key}.onnx').is_file()
    assert 'budget 10000 ms (onnxruntime) -> ' in out
    # 3. one subnet tested with its calibrated statistics
    out = _run(['mim', 'test', 'mmdet', CONFIG, '--checkpoint', 'calibrated.pth',
                '--work-dir', 'test_dynamic', '--cfg-options', 'subnet.width=0.5',
                'subnet.scale=(128,58)', 'subnet.proposals=20'], ws)
    assert 'coco/bbox_mAP' in out
    # 4. exported, whole, to a static model and ONNX, evaluated in ONNX Runtime
    out = _run(['python', tool('export_subnet.py'), CONFIG, 'calibrated.pth', '--width',
                '0.5', '--resolution', '128x58', '--proposals', '20', '--out-dir', 'subnet',
                '--onnx', '--onnx-eval', '--threads', '1'], ws)
    assert 'subnet/subnet.onnx (model; ONNX Runtime vs PyTorch on 4 test inputs' in out
    graph = onnx.load(str(ws / 'subnet' / 'subnet.onnx'))
    assert {n.domain for n in graph.graph.node} <= {'', 'ai.onnx'}
    metrics = json.loads((ws / 'subnet' / 'onnx_metrics.json').read_text())
    assert metrics['subnet']['proposals'] == 20 and 'coco/segm_mAP' in metrics['metrics']
    out = _run(['mim', 'test', 'mmdet', 'subnet/subnet_config.py', '--checkpoint',
                'subnet/subnet.pth', '--work-dir', 'test_static'], ws)
    assert 'coco/bbox_mAP' in out  # built, in a new process, from the config alone
