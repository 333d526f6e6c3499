"""One runner for the studies that train config variants x seeds, evaluate them and save JSON.

A study declares its runs (each with a unique, file-safe ``name``), the config
that trains each and what to evaluate after training (:class:`Study`). The rest
is here, the same for every study: training in a real ``Runner`` that resumes
from the run's last checkpoint, every validation recorded; the evaluation; the
result written to ``<results_dir>/<name>.json`` when done (never trained again;
an evaluation added later runs on the kept checkpoint); a lock file per run; and
``--jobs`` runs at a time. Studies: ``demo_studies.py``, ``replicate_fashion_mnist.py``.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import numbers
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Callable, List, Optional

import torch

from benchmarks import common

Log = Callable[[str], None]


class Study:
    """What differs between studies: the folders (``results_dir``: one
    ``<run name>.json`` per finished run; ``work_dir``: one ``<run name>/`` per
    run and its lock), :meth:`runs` and :meth:`config`, and what else is needed."""
    results_dir: str
    work_dir: str

    def runs(self) -> list:
        """The runs, in the order to run them; each has a unique ``name``."""
        raise NotImplementedError

    def config(self, run):
        """The config that trains ``run`` (the runner sets work_dir and resume)."""
        raise NotImplementedError

    def describe(self, run) -> dict:
        """What the result records of ``run`` besides its training."""
        return {}

    def evaluate(self, run, result: dict, log: Log) -> None:
        """Add to ``result`` what is missing of the run's evaluation (the
        trained weights: ``result['checkpoint']``)."""

    def complete(self, run, result: dict) -> bool:
        """Whether ``result`` holds every evaluation the study asks for now."""
        return True


def log_line(msg: str) -> None:
    print(f'[{datetime.datetime.now():%H:%M:%S}] {msg}', flush=True)


def result_path(study: Study, run) -> str:
    return osp.join(study.results_dir, f'{run.name}.json')


def run_config(study: Study, run):
    """The study's config of ``run`` with the run's work folder."""
    cfg = study.config(run)
    cfg.work_dir = osp.join(study.work_dir, run.name)
    return cfg


def load_result(study: Study, run) -> Optional[dict]:
    path = result_path(study, run)
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def is_complete(study: Study, run) -> bool:
    result = load_result(study, run)
    return result is not None and study.complete(run, result)


# ------------------------------------------------------------------ training
def _checkpoint_iteration(work_dir: str) -> int:
    """The iteration of the checkpoint a resume starts from (0: none)."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        return 0
    with open(path) as f:
        match = re.search(r'iter_(\d+)\.pth$', f.read().strip())
    return int(match[1]) if match else 0


def _timed(work_dir: str, seconds: float, done: int):
    """Training seconds and iterations summed over the invocations that trained
    the run (``train_time.json``: a run evaluated by a later process keeps them)."""
    path = osp.join(work_dir, 'train_time.json')
    if osp.exists(path):
        with open(path) as f:
            before = json.load(f)
        seconds, done = seconds + before['seconds'], done + before['iterations']
    with open(path, 'w') as f:
        json.dump(dict(seconds=seconds, iterations=done), f)
    return seconds, done


def train(cfg, name: str, log: Log = log_line) -> dict:
    """Train ``cfg`` (resuming from its work_dir's last checkpoint): the
    iterations, time, each validation's metrics, the mean of each logged loss
    over the last 200 iterations and the final checkpoint."""
    from mmengine.hooks import Hook
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    start_iter = _checkpoint_iteration(cfg.work_dir)
    cfg.resume = osp.exists(osp.join(cfg.work_dir, 'last_checkpoint'))
    init_default_scope(cfg.get('default_scope') or 'mmengine')
    # Runner.train() resumes by itself, after initialising the weights: loading
    # before it would have the initialisation overwrite the loaded weights
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    start = time.perf_counter()
    validations = []

    class RecordValidation(Hook):
        def after_val_epoch(self, runner, metrics=None):
            validations.append(dict(iteration=runner.iter, seconds=round(
                time.perf_counter() - start), **{k: float(v) for k, v in (metrics or {}).items()
                                                 if isinstance(v, numbers.Number)}))

    runner.register_hook(RecordValidation(), 'LOW')
    if start_iter:
        log(f'[{name}] resuming at iteration {start_iter}')
    runner.train()
    seconds, done = _timed(cfg.work_dir, time.perf_counter() - start, runner.iter - start_iter)
    losses = {key[len('train/'):]: float(buf.mean(200))
              for key, buf in runner.message_hub.log_scalars.items()
              if key.startswith('train/') and 'loss' in key}
    return dict(iterations=runner.iter, resumed_from=start_iter, train_seconds=round(seconds, 1),
                seconds_per_iter=round(seconds / done, 4) if done else None,
                validations=validations, final_losses=losses,
                checkpoint=osp.join(cfg.work_dir, f'iter_{runner.iter}.pth'))


# ------------------------------------------------------------- one run, many
def lock_path(study: Study, run) -> str:
    return osp.join(study.work_dir, f'{run.name}.lock')


def running_elsewhere(study: Study, run) -> bool:
    """Whether another live process holds the run's lock file."""
    try:
        with open(lock_path(study, run)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def execute(study: Study, run, log: Log = log_line) -> dict:
    """The run's result: read back when complete, else trained (resuming) and
    evaluated as far as missing, then saved; under the run's lock file."""
    if running_elsewhere(study, run):
        raise RuntimeError(f'{run.name} is being run by another process '
                           f'({lock_path(study, run)})')
    os.makedirs(study.work_dir, exist_ok=True)
    with open(lock_path(study, run), 'w') as f:
        f.write(str(os.getpid()))
    try:
        result = load_result(study, run)
        if result is not None and study.complete(run, result):
            return result
        if result is None:
            info = train(run_config(study, run), run.name, log)
            log(f'[{run.name}] trained to iteration {info["iterations"]} '
                f'({info["seconds_per_iter"]} s/iteration); evaluating')
            result = dict(study.describe(run), **info, versions=common.environment(
                'study', torch.device('cuda' if torch.cuda.is_available() else 'cpu')),
                finished=datetime.datetime.now().isoformat(timespec='seconds'))
        study.evaluate(run, result, log)
        common.save_json(result_path(study, run), result, quiet=True)
        return load_result(study, run)  # as later invocations will see it
    finally:
        os.remove(lock_path(study, run))


def run_all(study: Study, runs: list, jobs: int, log: Log = log_line,
            child: Optional[List[str]] = None) -> List[str]:
    """Run what is missing of ``runs``: here one after the other, or ``jobs`` at
    a time, each as ``python *child --only NAME --threads 1`` (on a small CPU,
    processes scale better than threads for small layers). Returns the names of
    the runs that failed (their logs, in the work folder, say why)."""
    pending = [r for r in runs if not is_complete(study, r) and not running_elsewhere(study, r)]
    if jobs == 1:
        for run in pending:
            execute(study, run, log)
        return []
    running, failed = {}, []
    os.makedirs(study.work_dir, exist_ok=True)
    while pending or running:
        while pending and len(running) < jobs:
            run = pending.pop(0)
            path = osp.join(study.work_dir, f'{run.name}.log')
            log(f'[{run.name}] started (log: {path})')
            with open(path, 'a') as out:
                running[run.name] = subprocess.Popen(
                    [sys.executable, *child, '--only', run.name, '--threads', '1'],
                    stdout=out, stderr=subprocess.STDOUT)
        time.sleep(2)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                if proc.returncode:
                    failed.append(name)
                log(f'[{name}] ' + (f'FAILED (exit {proc.returncode}); see its log'
                                    if proc.returncode else 'finished'))
    return failed


# ----------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--jobs', type=int, default=1,
                   help='runs at a time, each in its own process with one torch thread')
    p.add_argument('--only', default=None, help='run just this run (by name; see --list)')
    p.add_argument('--list', action='store_true', help='list the runs and their state')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads of a run in this process (ignored on a GPU)')


def run_study(study: Study, args, child: List[str], log: Log = log_line) -> List[str]:
    """What the flags of :func:`add_arguments` ask; ``child``: the script and
    arguments that run one run in a child process (``--jobs``)."""
    runs = study.runs()
    if args.list:
        for run in runs:
            state = ('done' if is_complete(study, run) else 'running'
                     if running_elsewhere(study, run) else 'started'
                     if osp.exists(osp.join(study.work_dir, run.name, 'last_checkpoint'))
                     else 'pending')
            print(f'{state:<8} {run.name}')
        return []
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    if args.only is not None:
        chosen = [r for r in runs if r.name == args.only]
        if not chosen:
            raise SystemExit(f'--only {args.only!r}: no such run; see --list')
        execute(study, chosen[0], log)
        return []
    failed = run_all(study, runs, args.jobs, log, child)
    if failed:
        log(f'{len(failed)} run(s) failed: {failed}')
    return failed
