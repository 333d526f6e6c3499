"""Replay the ways a user can lose work or get a silent wrong answer, and print
what happened (issue: nothing lost on an interrupt or a full disk).

    .venv/bin/python benchmarks/reliability.py [--workspace DIR] [--out FILE]

Each case runs the README's tools as new processes on a 2-iteration demo run
(the video demo config on tiny generated data, trained with `mim train`):

1. SIGTERM at several moments of `tools/calibrate_bn.py` writing over an
   existing calibrated file: afterwards the file is the old or a new complete
   checkpoint, and no temporary file is left.
2. A full disk: the output folder on a tmpfs just too small for a second copy
   (skipped where mounting is not allowed): the error names the file and the
   free space; the previous file is intact.
3. `--out` equal to the input checkpoint: refused, the checkpoint untouched.
4. An empty and a truncated checkpoint: named, with what to do.
5. A checkpoint of another model (the detection demo's) with the video config:
   refused with the counts of keys that do not load.
6. A checkpoint trained without MutualLearningHook: refused below width 1,
   tabulated as trained=False with --allow-untrained.
7. A damaged table (an empty cell): select_subnet names file, row and column.
8. A full disk while training saves its checkpoint (SafeCheckpointHook,
   max_keep_ckpts=1): the previous checkpoint stays loadable and `--resume`
   continues from it.

Prints one line per case (expected behaviour held or not, and the message)
and writes them as JSON (default benchmarks/results/reliability.json).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PYTHON = sys.executable
VIDEO = osp.join(ROOT, 'configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py')
DETECTION = osp.join(ROOT, 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py')
QUICK = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=1']


def run(cmd, cwd, **kwargs):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env['PATH'] = osp.dirname(PYTHON) + os.pathsep + env.get('PATH', '')
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


def last_error(proc) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ''


def loads(path: str) -> bool:
    import torch
    try:
        torch.load(path, map_location='cpu', weights_only=False)
        return True
    except Exception:  # noqa: BLE001  (any failure to read counts)
        return False


def train(config: str, work_dir: str, cwd: str, extra=()) -> str:
    proc = run(['mim', 'train', 'mmaction' if 'slowonly' in config else 'mmdet', config,
                '--work-dir', work_dir, '--cfg-options', *QUICK, *extra], cwd)
    if proc.returncode:
        raise SystemExit(f'training {config} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def calibrate(config, checkpoint, out, cwd, *extra):
    return run([PYTHON, osp.join(ROOT, 'tools/calibrate_bn.py'), config, checkpoint,
                '--out', out, '--widths', '1.0', '0.5', '--num-batches', '1', *extra], cwd)


def temporaries(folder: str):
    return [n for n in os.listdir(folder) if '.tmp' in n]


def case_sigterm(cfg, ckpt, ws):
    out_dir = osp.join(ws, 'sigterm')
    os.makedirs(out_dir, exist_ok=True)
    out = osp.join(out_dir, 'calibrated.pth')
    first = calibrate(cfg, ckpt, out, ws)
    assert first.returncode == 0, first.stderr[-2000:]
    t0 = time.time()
    calibrate(cfg, ckpt, osp.join(out_dir, 'timing.pth'), ws)
    whole = time.time() - t0
    os.remove(osp.join(out_dir, 'timing.pth'))
    results = []
    for fraction in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98):
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        proc = subprocess.Popen([PYTHON, osp.join(ROOT, 'tools/calibrate_bn.py'), cfg, ckpt,
                                 '--out', out, '--widths', '1.0', '0.5', '--num-batches', '1'],
                                cwd=ws, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(fraction * whole)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        results.append(dict(after_s=round(fraction * whole, 2), exit=proc.returncode,
                            loads=loads(out), temporaries=temporaries(out_dir)))
    ok = all(r['loads'] and not r['temporaries'] for r in results)
    return ok, f'{len(results)} kills over a {whole:.1f} s run; the file always loads', results


def case_full_disk(cfg, ckpt, ws):
    folder = osp.join(ws, 'full_disk')
    os.makedirs(folder, exist_ok=True)
    size_mib = int(osp.getsize(ckpt) * 1.5 / 2 ** 20) + 1
    mount = run(['mount', '-t', 'tmpfs', '-o', f'size={size_mib}m', 'tmpfs', folder], ws)
    if mount.returncode:
        return None, f'skipped: cannot mount a tmpfs here ({last_error(mount)})', None
    try:
        out = osp.join(folder, 'calibrated.pth')
        first = calibrate(cfg, ckpt, out, ws)
        second = calibrate(cfg, ckpt, out, ws)
        ok = (first.returncode == 0 and second.returncode != 0 and loads(out)
              and 'No space left' in second.stderr and 'MiB free' in second.stderr
              and not temporaries(folder))
        return ok, last_error(second), dict(first_exit=first.returncode,
                                            second_exit=second.returncode)
    finally:
        run(['umount', folder], ws)


def case_out_is_input(cfg, ckpt, ws):
    before = osp.getmtime(ckpt)
    proc = calibrate(cfg, ckpt, ckpt, ws)
    return (proc.returncode != 0 and 'is the input checkpoint' in proc.stderr
            and osp.getmtime(ckpt) == before), last_error(proc), None


def case_damaged_checkpoints(cfg, ckpt, ws):
    data = open(ckpt, 'rb').read()
    messages, ok = {}, True
    for name, content in (('empty.pth', b''), ('truncated.pth', data[:len(data) // 2])):
        path = osp.join(ws, name)
        with open(path, 'wb') as f:
            f.write(content)
        proc = calibrate(cfg, path, osp.join(ws, 'never.pth'), ws)
        messages[name] = last_error(proc)
        ok &= proc.returncode != 0 and path in proc.stderr and 'EOFError' not in proc.stderr
    return ok, ' | '.join(messages.values()), None


def case_wrong_checkpoint(cfg, det_ckpt, ws):
    proc = calibrate(cfg, det_ckpt, osp.join(ws, 'never.pth'), ws)
    return (proc.returncode != 0 and 'does not fit the config' in proc.stderr
            and not osp.exists(osp.join(ws, 'never.pth'))), last_error(proc), None


def case_no_record(cfg, ckpt, ws):
    import torch
    plain = torch.load(ckpt, map_location='cpu', weights_only=False)
    plain['meta'].pop('mutual_learning', None)
    path = osp.join(ws, 'no_record.pth')
    torch.save(plain, path)
    refused = calibrate(cfg, path, osp.join(ws, 'no_record_calibrated.pth'), ws)
    table = run([PYTHON, osp.join(ROOT, 'tools/build_lookup_table.py'), cfg, path,
                 '--out-dir', osp.join(ws, 'no_record_lut'), '--widths', '1.0', '0.5',
                 '--num-batches', '1', '--allow-untrained'], ws)
    rows = {}
    if table.returncode == 0:
        with open(osp.join(ws, 'no_record_lut', 'table.json')) as f:
            rows = {r['key']: r['trained'] for r in json.load(f)['rows']}
    ok = (refused.returncode != 0 and 'no record of MutualNet training' in refused.stderr
          and rows and all(trained == key.startswith('w1_') for key, trained in rows.items()))
    return ok, last_error(refused), dict(allow_untrained_rows=rows)


def case_damaged_table(ws):
    from mutual_mm.deploy import Subnet, TableRow, save_table, select_subnet
    files = save_table([TableRow(Subnet(1.0, 48), 10.0, 1.0, 0.9),
                        TableRow(Subnet(0.5, 48), 3.0, 1.0, 0.8)], osp.join(ws, 'table'))
    lines = open(files['csv']).read().splitlines()
    header = lines[0].split(',')
    cells = lines[2].split(',')
    cells[header.index('metric')] = ''
    damaged = osp.join(ws, 'damaged.csv')
    with open(damaged, 'w') as f:
        f.write('\n'.join([lines[0], lines[1], ','.join(cells)]) + '\n')
    try:
        select_subnet(damaged, max_flops=5.0)
        return False, 'a row was chosen from a damaged table', None
    except ValueError as err:
        return ("row 2" in str(err) and "'metric'" in str(err)), str(err), None


def case_training_full_disk(ws):
    """max_keep_ckpts=1 on a tmpfs that holds one checkpoint and a bit."""
    import torch
    probe = train(VIDEO, osp.join(ws, 'probe_size'), ws)
    size_mib = int(osp.getsize(probe) * 1.6 / 2 ** 20) + 1
    work = osp.join(ws, 'train_full_disk')
    os.makedirs(work, exist_ok=True)
    mount = run(['mount', '-t', 'tmpfs', '-o', f'size={size_mib}m', 'tmpfs', work], ws)
    if mount.returncode:
        return None, f'skipped: cannot mount a tmpfs here ({last_error(mount)})', None
    try:
        options = ['default_hooks.checkpoint.max_keep_ckpts=1',
                   'default_hooks.checkpoint.type=SafeCheckpointHook']
        proc = run(['mim', 'train', 'mmaction', VIDEO, '--work-dir', work, '--cfg-options',
                    *QUICK, *options], ws)
        with open(osp.join(work, 'last_checkpoint')) as f:
            last = f.read().strip()
        error = next((line for line in (proc.stdout + proc.stderr).splitlines()
                      if 'could not write' in line), last_error(proc))
        kept = torch.load(last, map_location='cpu', weights_only=False)['meta']['iter'] \
            if loads(last) else None
        ok = proc.returncode != 0 and kept == 1 and 'MiB free' in error
        return ok, error, dict(last_checkpoint=osp.basename(last), its_iteration=kept)
    finally:
        run(['umount', work], ws)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workspace', default='/tmp/mutual_reliability')
    parser.add_argument('--out', default=osp.join(ROOT, 'benchmarks/results/reliability.json'))
    args = parser.parse_args(argv)
    sys.path[:0] = [osp.join(ROOT, 'tools'), osp.join(ROOT, 'benchmarks')]
    import mutual_mm  # noqa: F401
    from make_demo_data import make_demo_data
    ws = args.workspace
    shutil.rmtree(ws, ignore_errors=True)
    os.makedirs(ws)
    make_demo_data(osp.join(ws, 'data', 'mutual_demo'), images=(8, 4), videos=(8, 4))
    video_ckpt = train(VIDEO, osp.join(ws, 'video'), ws)
    det_ckpt = train(DETECTION, osp.join(ws, 'detection'), ws)
    cases = [
        ('SIGTERM while the calibrated file is written', lambda: case_sigterm(VIDEO, video_ckpt, ws)),
        ('full disk while the calibrated file is written', lambda: case_full_disk(VIDEO, video_ckpt, ws)),
        ('--out equal to the input checkpoint', lambda: case_out_is_input(VIDEO, video_ckpt, ws)),
        ('empty / truncated checkpoint', lambda: case_damaged_checkpoints(VIDEO, video_ckpt, ws)),
        ('a detection checkpoint with the video config', lambda: case_wrong_checkpoint(VIDEO, det_ckpt, ws)),
        ('a checkpoint without the hook\'s record', lambda: case_no_record(VIDEO, video_ckpt, ws)),
        ('a table with an empty cell', lambda: case_damaged_table(ws)),
        ('full disk while training saves (max_keep_ckpts=1)', lambda: case_training_full_disk(ws)),
    ]
    import torch
    from common import device_name, environment, save_json
    report = dict(environment('reliability', torch.device('cpu')),
                  cpu=device_name(torch.device('cpu')), cases=[])
    for name, case in cases:
        t0 = time.time()
        ok, message, detail = case()
        status = 'skipped' if ok is None else ('held' if ok else 'FAILED')
        print(f'[{status:>7}] {name} ({time.time() - t0:.0f} s)\n          {message}')
        report['cases'].append(dict(case=name, status=status, message=message, detail=detail))
    save_json(args.out, report)
    return 0 if all(c['status'] != 'FAILED' for c in report['cases']) else 1


if __name__ == '__main__':
    sys.exit(main())
