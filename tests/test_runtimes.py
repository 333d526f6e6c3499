"""Deploy runtimes as registered plug-ins, and INT8 in ONNX Runtime: the
registry and what the tools offer from it, a runtime added in one class, INT8
outputs against float32, which operators run in INT8, the table's precision
column (old tables load as fp32) and select_subnet across precisions."""
import csv
import os.path as osp

import numpy as np
import pytest
import torch

import mutual_mm  # noqa: F401
from mutual_mm.deploy import Subnet, TableRow, load_table, save_table, select_subnet
from mutual_mm.deploy.onnx_export import export_onnx, onnx_session, static_exported_part
from mutual_mm.deploy.runtimes import (RUNTIMES, OnnxRuntimeInt8, Runtime, SubnetModel,
                                       build_runtime, quantize_onnx, runtime_names,
                                       runtime_operators)
from mutual_mm.utils import build_model, load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
VIDEO_DEMO = osp.join(ROOT, 'configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py')
DET_DEMO = osp.join(ROOT, 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py')

#: largest |INT8 - float32| output of the random-weight demo SlowOnly at width
#: 0.5, relative to the largest float32 output (measured 0.015, ORT 1.32)
INT8_RELATIVE_TOLERANCE = 0.05


# ------------------------------------------------------------- the registry
def test_the_registry_holds_the_three_runtimes_and_names_them_on_a_bad_name():
    assert runtime_names() == ['onnxruntime', 'onnxruntime-int8', 'torch']
    assert [build_runtime(n, threads=1).precision for n in runtime_names()] == \
        ['fp32', 'int8', 'fp32']
    with pytest.raises(ValueError, match=r"runtime 'tensorrt' is not registered; valid: "
                       r"'onnxruntime', 'onnxruntime-int8', 'torch'"):
        build_runtime('tensorrt')
    with pytest.raises(ValueError, match=r'threads=0; valid: a positive number'):
        build_runtime('onnxruntime', threads=0)


def test_the_tools_offer_what_the_registry_holds(capsys):
    """A runtime registered in one class is a --latency choice of the table
    tool (and a bad one is refused naming the registered ones)."""
    from tools.build_lookup_table import main

    @RUNTIMES.register_module(name='test-runtime')
    class TestRuntime(Runtime):
        name = 'test-runtime'

    try:
        with pytest.raises(SystemExit) as info:
            main(['cfg.py', 'ckpt.pth', '--out-dir', 'x', '--latency', 'tensorrt'])
        assert info.value.code == 2
        assert ("invalid choice: 'tensorrt' (choose from 'onnxruntime', "
                "'onnxruntime-int8', 'test-runtime', 'torch')") in capsys.readouterr().err
    finally:
        RUNTIMES.module_dict.pop('test-runtime')
    assert 'test-runtime' not in runtime_names()


def test_int8_refuses_a_whole_detector_before_any_work():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    detector = build_model(load_config(DET_DEMO))
    with pytest.raises(ValueError, match=r"runtime 'onnxruntime-int8': MaskRCNN exports "
                       r"whole through MMDeploy .* use 'onnxruntime' \(float32\)"):
        OnnxRuntimeInt8(threads=1).check_model(detector)


# ------------------------------------------------------------------ INT8
def _video_model():
    torch.manual_seed(0)
    model = build_model(load_config(VIDEO_DEMO))
    model.init_weights()
    return model.eval()


def test_int8_outputs_stay_close_to_float32_and_every_conv_runs_in_int8(tmp_path):
    shape = (1, 1, 3, 4, 40, 40)
    part = static_exported_part(_video_model(), 0.5, shape)
    fp32 = export_onnx(part, shape, str(tmp_path / 'fp32.onnx'))
    g = torch.Generator().manual_seed(1)
    feeds = [{'inputs': torch.randn(shape, generator=g).numpy()} for _ in range(16)]
    int8 = quantize_onnx(fp32, str(tmp_path / 'int8.onnx'), feeds)
    x = torch.randn(shape, generator=g).numpy()
    expected = onnx_session(fp32).run(None, {'inputs': x})[0]
    got = onnx_session(int8).run(None, {'inputs': x})[0]
    assert got.shape == expected.shape == (1, 8)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= INT8_RELATIVE_TOLERANCE
    # what ONNX Runtime runs: the 20 3D convolutions, the residual additions,
    # the pooling and the classifier, all in INT8; float32 in only at the input
    before, after = runtime_operators(fp32), runtime_operators(int8)
    assert before['float']['Conv3d'] == 20 and not before['int8']
    assert after['int8']['QLinearConv'] == 20 and after['int8']['QGemm'] == 1
    assert after['float'] == {}


def test_int8_runtime_exports_times_and_evaluates_on_its_calibration_data(tmp_path):
    """The runtime's own path: calibrated on the loader it is given (as the
    table gives it the config's calibration data), timed, evaluated through
    the family's predictions."""
    from mmaction.evaluation import AccMetric  # noqa: F401  (registers it)
    from mmaction.structures import ActionDataSample
    model = _video_model()
    g = torch.Generator().manual_seed(2)

    def batch(label):
        clips = [torch.randint(0, 256, (1, 3, 4, 40, 40), generator=g, dtype=torch.uint8)
                 for _ in range(2)]
        return dict(inputs=clips, data_samples=[ActionDataSample().set_gt_label(label)
                                                for _ in clips])

    class Loader(list):
        dataset = type('D', (), dict(metainfo={}, __len__=lambda self: 4))()

    batches = Loader([batch(1), batch(2)])
    from mutual_mm.deploy.complexity import preprocessed_examples
    target = SubnetModel(model, Subnet(0.5, 40, 4), preprocessed_examples(model, batches[0]),
                         batches[0], test_loader=lambda: batches,
                         calibration_loader=lambda: batches,
                         evaluator_cfg=dict(type='AccMetric'), num_batches=2)
    runtime = build_runtime('onnxruntime-int8', threads=1, repeats=2)
    path = runtime.export(target, str(tmp_path / 'w0.5_s40_f4_int8.onnx'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['w0.5_s40_f4_int8.onnx']
    assert runtime.latency_ms(path, target) > 0
    metrics = runtime.evaluate(path, target)
    fp32 = build_runtime('onnxruntime', threads=1)
    reference = fp32.evaluate(fp32.export(target, str(tmp_path / 'f.onnx')), target)
    torch_metrics = build_runtime('torch', threads=1).evaluate(model, target)
    assert 0 <= metrics['acc/top1'] <= 1
    assert reference['acc/top1'] == torch_metrics['acc/top1']  # fp32 equals PyTorch


# ------------------------------------------------------- the table's column
def _rows():
    rows = []
    for width, flops, fp32_ms, metric in ((1.0, 40.0, 4.0, 0.90), (0.5, 10.0, 2.0, 0.80)):
        subnet = Subnet(width, 160)
        rows.append(TableRow(subnet, flops, 1.0, metric, fp32_ms, True, 'onnxruntime',
                             latency_threads=1))
        rows.append(TableRow(subnet, flops, 1.0, metric - 0.01, fp32_ms / 2, True,
                             'onnxruntime-int8', latency_threads=1, precision='int8'))
    return rows


def test_select_subnet_picks_across_precisions_and_can_be_held_to_one():
    rows = _rows()
    # under 2.5 ms the full network fits only in INT8 (2 ms), and beats w0.5 fp32
    best = select_subnet(rows, max_latency_ms=2.5)
    assert (best.key, best.precision, best.metric) == ('w1_s160_int8', 'int8', 0.89)
    assert select_subnet(rows, max_latency_ms=2.5, precisions=['fp32']).key == 'w0.5_s160'
    assert select_subnet(rows, max_flops=50).key == 'w1_s160'  # same FLOPs: fp32 wins
    with pytest.raises(ValueError, match=r"select_subnet: precision 'fp16' is not in the "
                       r"table; it has 'fp32', 'int8'"):
        select_subnet(rows, max_latency_ms=2.5, precisions='fp16')


def test_tables_with_precisions_round_trip_and_old_tables_load_as_fp32(tmp_path):
    rows = _rows()
    files = save_table(rows, str(tmp_path / 'table'), 'acc/top1')
    for path in files.values():
        again = load_table(path)
        assert [r.as_dict() for r in again] == [r.as_dict() for r in rows]
        assert [r.precision for r in again] == ['fp32', 'int8'] * 2
    # a table written before the column existed
    with open(files['csv']) as f:
        old = [{k: v for k, v in d.items() if k != 'precision'} for d in csv.DictReader(f)]
    with open(tmp_path / 'old.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old[::2])
    assert [r.precision for r in load_table(str(tmp_path / 'old.csv'))] == ['fp32'] * 2
    with pytest.raises(ValueError, match=r"row 1 .*column 'precision': 'int4'; valid: "
                       r"'fp32', 'int8'"):
        bad = [dict(d, precision='int4') for d in old]
        with open(tmp_path / 'bad.csv', 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(bad[0]))
            writer.writeheader()
            writer.writerows(bad)
        load_table(str(tmp_path / 'bad.csv'))


def test_the_table_tool_tabulates_fp32_and_int8_rows(trained, tmp_path):
    """As the README writes it, a new process: ``--latency onnxruntime onnxruntime-int8``."""
    import subprocess
    import sys
    cfg, checkpoint, _ = trained
    cfg_file = tmp_path / 'config.py'
    cfg.dump(str(cfg_file))
    out = tmp_path / 'lut'
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'build_lookup_table.py'), str(cfg_file),
         checkpoint, '--out-dir', str(out), '--widths', '1.0', '0.5', '--resolutions', '48',
         '--frames', '4', '--num-batches', '1', '--latency', 'onnxruntime',
         'onnxruntime-int8', '--threads', '1', '--latency-budgets', '1e6'],
        capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = load_table(str(out / 'table.csv'))
    assert [(r.key, r.latency_runtime, r.precision) for r in rows] == [
        ('w1_s48_f4', 'onnxruntime', 'fp32'), ('w1_s48_f4_int8', 'onnxruntime-int8', 'int8'),
        ('w0.5_s48_f4', 'onnxruntime', 'fp32'),
        ('w0.5_s48_f4_int8', 'onnxruntime-int8', 'int8')]
    assert all(r.latency_ms > 0 and 0 <= r.metric <= 1 and r.latency_threads == 1
               for r in rows)
    assert rows[0].flops == rows[1].flops  # the same subnet, the same FLOPs
    for row in rows:
        name = row.subnet.key + ('_int8.onnx' if row.precision == 'int8' else '.onnx')
        assert (out / 'onnx' / name).is_file()


def test_the_export_tool_writes_and_evaluates_the_int8_file(calibrated_reduced, tmp_path,
                                                            capsys):
    import json

    from tools.export_subnet import main as export
    _, cfg_file, calibrated = calibrated_reduced
    out = tmp_path / 'subnet'
    _, _, result = export([cfg_file, calibrated, '--width', '0.5', '--resolution', '32',
                           '--frames', '2', '--out-dir', str(out), '--onnx', '--runtime',
                           'onnxruntime-int8', '--num-batches', '1', '--onnx-eval',
                           '--threads', '1'])
    assert result['within_tolerance']  # subnet.onnx, checked against PyTorch
    assert result['runtime_path'] == str(out / 'subnet_int8.onnx')
    saved = json.loads((out / 'onnx_metrics.json').read_text())
    assert saved['runtime'] == 'onnxruntime-int8' and saved['onnx'] == result['runtime_path']
    assert 0 <= saved['metrics']['acc/top1'] <= 1
    assert 'onnxruntime-int8 on the test set: acc/top1' in capsys.readouterr().out
    with pytest.raises(SystemExit):  # --runtime without --onnx
        export([cfg_file, calibrated, '--width', '0.5', '--out-dir', str(tmp_path / 'x'),
                '--runtime', 'onnxruntime-int8'])
    assert '--onnx-part, --runtime and --onnx-eval need --onnx' in capsys.readouterr().err
