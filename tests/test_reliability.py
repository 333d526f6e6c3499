"""Nothing lost on an interrupt or a full disk, the right checkpoint or a clear
refusal, and tables that cannot pick a broken row (the deploy tools)."""
import errno
import json
import os
import os.path as osp

import pytest
import torch

import mutual_mm  # noqa: F401
from mutual_mm.deploy import Subnet, TableRow, load_table, pareto_frontier, select_subnet
from mutual_mm.deploy.lookup_table import save_table
from mutual_mm.fileio import atomic_folder, atomic_path, save_torch


def _rows():
    def row(w, s, flops, metric, ms, trained=True):
        return TableRow(Subnet(w, s), flops, 1.0, metric, ms, trained=trained)
    return [row(1.0, 224, 100, float('nan'), 9.0),  # listed first: a failed evaluation
            row(0.75, 224, 60, 0.95, 6.0),
            row(0.5, 224, float('nan'), 0.99, 1.0),  # a failed FLOPs count, fastest
            row(0.5, 160, 20, 0.97, 2.0, trained=False),
            row(0.25, 160, 10, 0.50, 1.5)]


def test_select_subnet_and_the_frontier_never_choose_a_broken_or_untrained_row():
    rows = _rows()
    assert select_subnet(rows).subnet.key == 'w0.75_s224'
    assert select_subnet(rows, max_latency_ms=5).subnet.key == 'w0.25_s160'
    assert select_subnet(rows, max_flops=50).subnet.key == 'w0.25_s160'
    assert select_subnet(rows, max_flops=50, include_untrained=True).subnet.key == \
        'w0.5_s160'
    assert [r.subnet.key for r in pareto_frontier(rows)] == ['w0.25_s160', 'w0.75_s224']
    with pytest.raises(ValueError, match=r'fits max_flops=5 .*non-finite metric or cost: '
                       r'w1_s224, w0.5_s224; left out as untrained.*w0.5_s160'):
        select_subnet(rows, max_flops=5)
    with pytest.raises(ValueError, match='no row can be chosen'):
        select_subnet(rows[:1])


def test_a_malformed_table_names_its_file_row_and_column(tmp_path):
    files = save_table(_rows()[1:], str(tmp_path / 'table'), 'acc')
    lines = open(files['csv']).read().splitlines()
    header = lines[0].split(',')
    # an empty metric cell in the second data row
    cells = lines[2].split(',')
    cells[header.index('metric')] = ''
    broken = tmp_path / 'empty_cell.csv'
    broken.write_text('\n'.join([lines[0], lines[1], ','.join(cells)] + lines[3:]) + '\n')
    with pytest.raises(ValueError, match=r"empty_cell.csv, row 2 \(w0.5_s224\): column "
                       r"'metric' is empty"):
        load_table(str(broken))
    # a missing column
    table = json.load(open(files['json']))
    for row in table['rows']:
        row.pop('flops')
    missing = tmp_path / 'missing.json'
    missing.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=r"missing.json, row 1 \(w0.75_s224\): column "
                       r"'flops' is missing"):
        select_subnet(str(missing))
    # an unreadable number
    cells = lines[1].split(',')
    cells[header.index('flops')] = 'many'
    bad = tmp_path / 'bad.csv'
    bad.write_text('\n'.join([lines[0], ','.join(cells)]) + '\n')
    with pytest.raises(ValueError, match=r"bad.csv, row 1 .*column 'flops': cannot read "
                       r"'many'"):
        load_table(str(bad))


def test_the_table_round_trips_the_latency_threads(tmp_path):
    rows = [TableRow(Subnet(1.0, 224), 10.0, 1.0, 0.5, 2.0, latency_runtime='onnxruntime',
                     latency_threads=1)]
    files = save_table(rows, str(tmp_path / 't'))
    for path in files.values():
        assert load_table(path)[0].latency_threads == 1


# ------------------------------------------------------------- atomic files
def test_an_interrupted_or_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'calibrated.pth')
    save_torch({'good': torch.ones(3)}, path)
    real_save = torch.save

    def save_then_fail(error):
        def save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)  # a partial file exists when it fails
            raise error
        return save

    for error in (KeyboardInterrupt(), OSError(errno.ENOSPC, 'No space left on device')):
        monkeypatch.setattr(torch, 'save', save_then_fail(error))
        with pytest.raises(type(error)) as info:
            save_torch({'new': torch.zeros(3)}, path)
        monkeypatch.setattr(torch, 'save', real_save)
        assert torch.equal(torch.load(path)['good'], torch.ones(3))
        assert os.listdir(tmp_path) == ['calibrated.pth']  # no temporary file left
    assert f'could not write {path}' in str(info.value)
    assert 'MiB free' in str(info.value)


def test_a_folder_is_swapped_whole_or_not_at_all(tmp_path):
    folder = str(tmp_path / 'onnx')
    with atomic_folder(folder) as build:
        for name in ('a.onnx', 'b.onnx'):
            open(osp.join(build, name), 'w').write('run 1')
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(folder) as build:
            open(osp.join(build, 'a.onnx'), 'w').write('run 2')
            raise KeyboardInterrupt
    assert {n: open(osp.join(folder, n)).read() for n in os.listdir(folder)} == \
        {'a.onnx': 'run 1', 'b.onnx': 'run 1'}
    with atomic_folder(folder) as build:
        open(osp.join(build, 'c.onnx'), 'w').write('run 3')
    assert os.listdir(folder) == ['c.onnx']
    assert sorted(os.listdir(tmp_path)) == ['onnx']


def test_a_written_file_keeps_its_extension_while_written(tmp_path):
    with atomic_path(str(tmp_path / 'table.png')) as tmp:
        assert tmp.endswith('.png') and osp.dirname(tmp) == str(tmp_path)
        open(tmp, 'w').write('x')
    assert os.listdir(tmp_path) == ['table.png']


# ------------------------------------------------- the tools, on a real run
def _config_file(cfg, tmp_path):
    path = tmp_path / 'config.py'
    cfg.dump(str(path))
    return str(path)


def test_calibration_refuses_to_overwrite_its_input(trained, tmp_path):
    from tools.calibrate_bn import main as calibrate
    cfg, checkpoint, _ = trained
    before = os.path.getmtime(checkpoint)
    with pytest.raises(ValueError, match='is the input checkpoint'):
        calibrate([_config_file(cfg, tmp_path), checkpoint, '--out', checkpoint,
                   '--widths', '0.5', '--num-batches', '1'])
    assert os.path.getmtime(checkpoint) == before


@pytest.mark.parametrize('damage', ['empty', 'truncated'])
def test_an_unreadable_checkpoint_is_named(trained, tmp_path, damage):
    from tools.calibrate_bn import main as calibrate
    cfg, checkpoint, _ = trained
    bad = tmp_path / 'bad.pth'
    data = open(checkpoint, 'rb').read()
    bad.write_bytes(b'' if damage == 'empty' else data[:len(data) // 2])
    match = 'is empty' if damage == 'empty' else 'is a truncated zip archive'
    with pytest.raises(ValueError, match=f'checkpoint {bad} {match}.*interrupt or a full '
                       'disk'):
        calibrate([_config_file(cfg, tmp_path), str(bad), '--out', str(tmp_path / 'c.pth'),
                   '--widths', '0.5', '--num-batches', '1'])
    assert not (tmp_path / 'c.pth').exists()


def test_a_checkpoint_of_another_model_is_refused(trained, tmp_path):
    """A Mask R-CNN checkpoint given with the video config."""
    from mmengine.registry import init_default_scope

    from mutual_mm.utils import build_model
    from tests.helpers import det_train_cfg
    from tools.export_subnet import main as export
    cfg, _, _ = trained
    init_default_scope('mmdet')
    detector = build_model(det_train_cfg(tmp_path / 'w', tmp_path / 'd'))
    other = tmp_path / 'detector.pth'
    torch.save(dict(state_dict=detector.state_dict(), meta={}), other)
    with pytest.raises(ValueError, match=r'does not fit the config\'s model \(Recognizer3D\)'
                       r": \d+ of the model's \d+ keys missing from the checkpoint \(e.g. "
                       r"backbone\..*of the checkpoint's \d+ keys not in the model.*trained "
                       'with another'):
        export([_config_file(cfg, tmp_path), str(other), '--width', '1.0',
                '--out-dir', str(tmp_path / 'subnet')])
    assert not (tmp_path / 'subnet' / 'subnet.pth').exists()


def test_a_checkpoint_without_the_hooks_record_is_refused_below_full_width(trained, tmp_path):
    from tools.build_lookup_table import main as build
    cfg, checkpoint, _ = trained
    plain = torch.load(checkpoint, weights_only=False)
    del plain['meta']['mutual_learning']
    no_record = tmp_path / 'no_record.pth'
    torch.save(plain, no_record)
    args = [_config_file(cfg, tmp_path), str(no_record), '--out-dir', str(tmp_path / 'lut'),
            '--widths', '1.0', '0.5', '--resolutions', '48', '--frames', '4',
            '--num-batches', '1']
    with pytest.raises(ValueError, match=r'w0.5_s48_f4: width below 1 with no record\); the '
                       'checkpoint holds no record of MutualNet training'):
        build(args)
    rows = build(args + ['--allow-untrained'])
    assert {r.subnet.key: r.trained for r in rows} == {'w1_s48_f4': True,
                                                        'w0.5_s48_f4': False}
    assert [r.subnet.key for r in pareto_frontier(rows)] == ['w1_s48_f4']


@pytest.mark.parametrize('args, message', [
    (['--latency', 'onnxruntime', '--threads', '0'], "'0': valid: a positive number of "
                                                     'threads'),
    (['--latency', 'onnxruntime', '--threads', '-1'], "'-1': valid: a positive number of "
                                                      'threads'),
    (['--latency', '--latency-budgets', '-5'], "'-5': valid: a positive latency in ms"),
    (['--budgets', '0'], "'0': valid: a positive number of GFLOPs"),
    (['--latency-budgets', '5'], '--latency-budgets needs --latency'),
])
def test_bad_table_options_are_refused_before_anything_is_written(tmp_path, capsys, args,
                                                                   message):
    from tools.build_lookup_table import main as build
    out = tmp_path / 'lut'
    with pytest.raises(SystemExit) as info:
        build(['config.py', 'ckpt.pth', '--out-dir', str(out)] + args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_latency_threads_are_explicit():
    from mutual_mm.deploy.build_table import latency_threads
    assert latency_threads('onnxruntime', 3) == 3
    assert latency_threads('onnxruntime', None) == len(os.sched_getaffinity(0))
    assert latency_threads('torch', None) == torch.get_num_threads()
    with pytest.raises(ValueError, match=r'threads=0; valid: a positive number'):
        latency_threads('onnxruntime', 0)


def test_int_and_box_scales_compare_by_the_images_they_make():
    """A detector's ``batch_views`` scale 96 is mmcv's (96, 96) box: a 4:3
    image becomes 96x72, so a (128, 77) subnet lies between trained sizes."""
    from mutual_mm.engine.trained_space import TrainedSpace
    space = TrainedSpace(width_range=[0.25, 1.0], width_step=0.05, scales=[[128, 96], 96])
    assert space.untrained_reasons(Subnet(1.0, (128, 77))) == []
    assert space.untrained_reasons(Subnet(1.0, (128, 72))) == []
    assert space.untrained_reasons(Subnet(1.0, (128, 58))) == [
        "input size (128, 58) is outside the trained [[128, 96], 96]"]
    # ints alone (video short sides) compare as they are
    video = TrainedSpace(width_range=[0.25, 1.0], width_step=0.05, scales=[48, 38, 30])
    assert video.untrained_reasons(Subnet(1.0, 30)) == []
    assert video.untrained_reasons(Subnet(1.0, 29)) != []


def test_sigterm_during_a_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """The tools turn SIGTERM into SystemExit (``exit_on_sigterm``), so an
    interrupted write cleans up after itself like Ctrl-C does."""
    import signal
    import subprocess
    import sys
    path = tmp_path / 'table.csv'
    path.write_text('old, complete\n')
    script = (
        'import os, signal\n'
        'from mutual_mm.fileio import atomic_path, exit_on_sigterm\n'
        'exit_on_sigterm()\n'
        f'with atomic_path({str(path)!r}) as tmp:\n'
        '    open(tmp, "w").write("new, half")\n'
        '    os.kill(os.getpid(), signal.SIGTERM)\n'
        '    open(tmp, "a").write(" written")\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert path.read_text() == 'old, complete\n'
    assert os.listdir(tmp_path) == ['table.csv']


def test_torch_saves_full_disk_error_is_named_as_one(tmp_path, monkeypatch):
    """torch.save to a path reports a full disk as a RuntimeError of its zip
    writer; with no space left it is reported as the full disk it is."""
    import shutil
    from collections import namedtuple
    path = str(tmp_path / 'calibrated.pth')
    save_torch({'good': torch.ones(1)}, path)

    def fail(obj, f, *args, **kwargs):
        open(f, 'wb').write(b'PK partial')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 0')

    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(torch, 'save', fail)
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: usage(10, 10, 0))
    with pytest.raises(OSError, match=rf'could not write {path}: No space left on device '
                       r'\(.*unexpected pos.*\(0.0 MiB free'):
        save_torch({'new': torch.zeros(1)}, path)
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: usage(10, 0, 10 ** 9))
    with pytest.raises(RuntimeError, match='unexpected pos'):  # not a full disk
        save_torch({'new': torch.zeros(1)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)['good'], torch.ones(1))
    assert os.listdir(tmp_path) == ['calibrated.pth']
