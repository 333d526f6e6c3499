"""A subnet outside PyTorch: exported to ONNX (standard operators only, no
mutual_mm or mmcv needed), run in ONNX Runtime and compared with PyTorch; the
lookup table's ONNX Runtime latency column; the export tool's --onnx."""
import os.path as osp

import onnx
import pytest
import torch

import mutual_mm  # noqa: F401
from mutual_mm.deploy import select_subnet
from mutual_mm.deploy.onnx_export import (RELATIVE_TOLERANCE, check_onnx, export_onnx,
                                          onnx_latency_ms, static_exported_part)
from mutual_mm.utils import build_model, load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMOS = {  # (config, a reduced input, outputs of the exported part)
    'video': ('configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py',
              (1, 1, 3, 4, 40, 40), 1),  # class scores
    'detection': ('configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py',
                  (1, 3, 96, 160), 5),  # the 5 FPN levels
}


MODELS_BUILT_HERE = {  # (scope, model config, a reduced input, outputs)
    'x3d': ('mmaction', dict(
        type='Recognizer3D', backbone=dict(type='SlimX3D', gamma_w=1, gamma_b=2.25,
                                           gamma_d=0.5),
        cls_head=dict(type='X3DHead', in_channels=432, num_classes=4),
        data_preprocessor=dict(type='ActionDataPreprocessor', format_shape='NCTHW')),
        (1, 1, 3, 4, 32, 32), 1),
    'classifier': ('mmengine', dict(
        type='MutualImageClassifier',
        backbone=dict(type='SlimMobileNetV1', widen_factor=0.25, out_indices=(4, )),
        head=dict(type='MutualLinearClsHead', num_classes=5, in_channels=256)),
        (1, 3, 64, 64), 1),
}


def _model(task):
    from mmengine.registry import MODELS, init_default_scope
    if task in DEMOS:
        return build_model(load_config(osp.join(ROOT, DEMOS[task][0]))), DEMOS[task][1:]
    scope, cfg, shape, outputs = MODELS_BUILT_HERE[task]
    init_default_scope(scope)
    return MODELS.build(cfg), (shape, outputs)


@pytest.mark.parametrize('task', sorted(DEMOS) + sorted(MODELS_BUILT_HERE))
def test_reduced_subnet_runs_in_onnxruntime_as_in_pytorch(task, tmp_path):
    torch.manual_seed(0)
    model, (shape, num_outputs) = _model(task)
    model.init_weights()
    part = static_exported_part(model, 0.5, shape)
    path = export_onnx(part, shape, str(tmp_path / f'{task}.onnx'))
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert {node.domain for node in graph.graph.node} <= {'', 'ai.onnx'}  # standard ops
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == shape
    check = check_onnx(part, path, torch.randn(shape))
    assert check['outputs'] == num_outputs
    assert check['max_rel_diff'] <= RELATIVE_TOLERANCE and check['within_tolerance']
    # the exported network is the reduced one: fewer weights than the full width's
    # (a detector's FPN reads fewer channels, but keeps its outputs)
    full = static_exported_part(model, 1.0, shape)
    assert sum(p.numel() for p in part.parameters()) < \
        0.8 * sum(p.numel() for p in full.parameters())
    assert onnx_latency_ms(path, [torch.randn(shape).numpy()], threads=1, repeats=2,
                           warmup=1) > 0


def test_export_tool_writes_a_checked_onnx_file(calibrated_reduced, tmp_path):
    from tools.export_subnet import main as export
    _, cfg_file, calibrated = calibrated_reduced
    _, _, result = export([cfg_file, calibrated, '--width', '0.5', '--resolution',
                           '32', '--frames', '2', '--out-dir', str(tmp_path / 'subnet'),
                           '--onnx'])
    assert result['path'] == str(tmp_path / 'subnet' / 'subnet.onnx')
    assert result['within_tolerance'] and result['outputs'] == 1
    graph = onnx.load(result['path'])
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims[-3:] == [2, 32, 32]  # the subnet's frames and size


def test_lookup_table_onnxruntime_latency(trained, tmp_path):
    from tools.build_lookup_table import main
    cfg, checkpoint, _ = trained
    cfg_file = tmp_path / 'config.py'
    cfg.dump(str(cfg_file))
    out = tmp_path / 'lut'
    rows = main([str(cfg_file), checkpoint, '--out-dir', str(out), '--widths', '1.0', '0.5',
                 '--resolutions', '48', '--frames', '4', '--num-batches', '1',
                 '--latency', 'onnxruntime', '--threads', '1', '--latency-budgets', '1e6'])
    assert all(r.latency_runtime == 'onnxruntime' and r.latency_ms > 0 for r in rows)
    for row in rows:
        assert (out / 'onnx' / f'{row.subnet.key}.onnx').is_file()
    loaded = select_subnet(str(out / 'table.csv'), max_latency_ms=1e6)
    assert loaded.latency_runtime == 'onnxruntime'
    assert (out / 'table_latency.png').is_file()
