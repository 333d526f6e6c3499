"""The README's main command, at a tiny size: generated data -> `mim train` of
both demo configs -> BN calibration -> lookup table, plot and budget picks."""
import json
import os.path as osp
import subprocess
import sys

from mutual_mm.deploy import load_table

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_demo_quick_runs_the_whole_workflow(tmp_path):
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--workspace', str(tmp_path),
         '--quick'], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = tmp_path / 'work_dirs' / 'mutual_demo'
    summary = json.loads((runs / 'summary.json').read_text())
    # 4 widths x 4 detection resolutions x 2 proposal counts; 4 widths x 3 sizes x 3 frames
    for name, count, metric in (('detection', 32, 'coco/bbox_mAP'),
                                ('video', 36, 'acc/top1')):
        rows = load_table(str(runs / name / 'table.csv'))
        assert len(rows) == count
        assert summary[name]['metric'] == metric
        assert all(0 <= r.metric <= 1 for r in rows)
        full = max(rows, key=lambda r: (r.subnet.width, r.features_flops,
                                        r.subnet.proposals or 0))
        assert full.subnet.width == 1.0
        assert summary[name]['full']['flops'] == full.flops
        # width x resolution span backbone + neck (an untrained detector's heads
        # run on all its proposals and detections: they dominate its whole cost)
        assert min(r.features_flops for r in rows) < 0.25 * full.features_flops
        assert (runs / name / 'table.png').stat().st_size > 10_000
        assert (runs / name / 'train' / 'iter_2.pth').is_file()
        # the training went through `mim train` and the hook logged its cohort: the
        # detector one random width per iteration (n=1), the video model two
        log = (runs / name / 'train.log').read_text()
        assert 'min.width' in log and 'rand0.width' in log
        assert ('rand1.width' in log) == (name == 'video')
    assert 'done in' in result.stdout and 'budget 50% of the full FLOPs' in result.stdout
    # per-subnet evaluator output (a COCO summary each) goes to the log, not the terminal
    assert 'Average Precision' not in result.stdout
    assert 'Average Precision' in (runs / 'detection' / 'eval.log').read_text()
    assert len(result.stdout.splitlines()) < 100, result.stdout
    # each model's pick under a latency budget in ONNX Runtime, and its file
    for name in ('detection', 'video'):
        pick = summary[name]['latency_pick']
        assert pick['latency_runtime'] == 'onnxruntime'
        assert pick['latency_ms'] <= pick['budget_ms']
        assert osp.isfile(pick['onnx']) and pick['onnx'] in result.stdout
    assert 'in ONNX Runtime' in result.stdout
    # the detector's whole-model cost, its proposals axis, and its pick evaluated in
    # ONNX Runtime on the val set next to PyTorch
    rows = load_table(str(runs / 'detection' / 'table.csv'))
    assert {r.subnet.proposals for r in rows} == {100, 20}
    assert all(r.flops > r.features_flops for r in rows)
    pick = summary['detection']['latency_pick']
    assert set(pick['onnx_metrics']) == set(pick['torch_metrics']) == \
        {'coco/bbox_mAP', 'coco/segm_mAP'}
    assert pick['onnx_check']['within_tolerance']
    assert 'that file in ONNX Runtime on the val set: bbox_mAP' in result.stdout
    assert (runs / 'detection' / 'table_latency.png').is_file()
