"""The stage-width search, end to end (``tools/search_subnet.py``).

The space: one width per backbone stage, on the search grid (the trained width
grid subsampled to ``search_step``), x the trained input views. The walk:
greedy, as AutoSlim (see :mod:`.space` for why). Candidates are scored on a
held-out split of the training data (:mod:`.held_out`, :mod:`.scoring`), never
on the config's val/test set; the chosen subnets (and the best uniform ones,
for comparison) are then calibrated into a checkpoint and tabulated on the
test set by :func:`~mutual_mm.deploy.build_lookup_table`.

Files in ``out_dir``: ``search_state.json`` (every evaluated candidate,
rewritten atomically after each: an interrupt loses at most the one in
flight, and the same call resumes from it), ``latency_table.json`` (with a
runtime), ``search.json`` (the answers and what they cost), ``calibrated.pth``,
``table.csv``/``table.json`` (the lookup-table format).
"""
import copy
import json
import math
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence

from ...engine.trained_space import check_trained
from ...fileio import write_text
from ...models.slimming import find_slim_backbone
from ...ops import WidthGrid, normalize_width, width_str
from ..build_table import build_lookup_table
from ..calibrate_checkpoint import _config_hook, calibrate_checkpoint, trained_subnets
from ..lookup_table import save_table
from ..runtimes import build_runtime, module_timing_runtimes, runtime_class
from ..subnet import Subnet
from .latency import StageLatencyTable, build_latency_table, check_latency_table
from .scoring import HeldOutScorer
from .space import best_under, evaluation_bound, greedy_walk, search_grid

STATE_FILE, LATENCY_FILE, RESULT_FILE = 'search_state.json', 'latency_table.json', 'search.json'
CALIBRATED_FILE = 'calibrated.pth'


def check_budgets(flops_budgets: Sequence[float], latency_budgets: Sequence[float],
                  runtime: Optional[str]) -> None:
    """Refuse bad budgets and runtimes before any work (the value named, and
    what is valid)."""
    for kind, budgets in (('--flops-budgets', flops_budgets),
                          ('--latency-budgets', latency_budgets)):
        for b in budgets:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or \
                    not math.isfinite(b) or b <= 0:
                raise ValueError(f'{kind} {b!r}: valid: a positive number '
                                 f'({"FLOPs" if "flops" in kind else "ms"})')
    if not flops_budgets and not latency_budgets:
        raise ValueError('no budget: give --flops-budgets (FLOPs) and/or '
                         '--latency-budgets (ms, with --runtime)')
    if latency_budgets and runtime is None:
        raise ValueError('--latency-budgets needs --runtime (the runtime latency is '
                         f'measured in; valid: {", ".join(module_timing_runtimes())})')
    if runtime is not None:
        runtime_class(runtime)  # not registered: the registered ones listed
        if runtime not in module_timing_runtimes():
            raise ValueError(f'--runtime {runtime!r} cannot time the parts of a model a '
                             'per-stage latency table needs; valid: '
                             f'{", ".join(module_timing_runtimes())}')


def _read_json(path: str) -> Optional[dict]:
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, data) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=False) + '\n')


def _differences(old: dict, new: dict) -> List[str]:
    return [f'{k}: {old.get(k)!r} then, {new.get(k)!r} now'
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _resolution(scale) -> str:
    return 'x'.join(map(str, scale)) if isinstance(scale, (tuple, list)) else str(scale)


def export_command(config: str, checkpoint: str, subnet: Subnet, out_dir: str,
                   onnx: bool = False) -> str:
    """The ``tools/export_subnet.py`` command that exports ``subnet``."""
    parts = ['python tools/export_subnet.py', config, checkpoint,
             f'--width {width_str(subnet.width)}']
    if subnet.scale is not None:
        parts.append(f'--resolution {_resolution(subnet.scale)}')
    if subnet.frames is not None:
        parts.append(f'--frames {subnet.frames}')
    parts.append(f'--out-dir {out_dir}')
    if onnx:
        parts.append('--onnx')
    return ' '.join(parts)


def search_subnet(cfg, checkpoint: str, out_dir: str,
                  flops_budgets: Sequence[float] = (),
                  latency_budgets: Sequence[float] = (),
                  runtime: Optional[str] = None, held_out: Optional[int] = None,
                  search_step: Optional[float] = None, allow_untrained: bool = False,
                  num_batches: int = 3, threads: Optional[int] = None,
                  metric: Optional[str] = None, latency_repeats: int = 10,
                  latency_checks: int = 8, config_path: str = 'CONFIG',
                  log: Callable[[str], None] = print) -> dict:
    """Search the stage widths x views of ``checkpoint`` for the best subnet
    under each budget; write the files of the module docstring; return what
    ``search.json`` holds.

    Args:
        flops_budgets: FLOPs (whole model, one input) budgets.
        latency_budgets: ms budgets in ``runtime`` (predicted by the per-stage
            latency table while searching; measured in the final table).
        runtime: a registered runtime that times modules (``onnxruntime``,
            ``torch``); with it the final table has its latency.
        held_out: held-out samples (the last of the training set; default
            10 % of it, at most 5000).
        search_step: the search grid's step (a multiple of the trained grid's;
            default: the trained grid's).
        allow_untrained: search stage widths on a checkpoint trained with
            uniform widths only (refused otherwise).
        num_batches: BN calibration batches per candidate (and of the final
            calibration).
        threads: CPU threads latency is measured with (recorded).
        latency_repeats, latency_checks: timed runs per latency; random
            stage-width subnets measured end to end to check the table.
        config_path: the config's file, for the printed export command.
        log: where progress lines go.

    Raises:
        ValueError: a bad budget, runtime or search step; a backbone without
            stages; stage widths on a uniform-trained checkpoint without
            ``allow_untrained``; a resume with other settings.
    """
    start = time.perf_counter()
    flops_budgets, latency_budgets = list(flops_budgets), list(latency_budgets)
    check_budgets(flops_budgets, latency_budgets, runtime)
    os.makedirs(out_dir, exist_ok=True)
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = osp.join(out_dir, 'work')
    scorer = HeldOutScorer(cfg, checkpoint, held_out, num_batches, metric)
    backbone = find_slim_backbone(scorer.model)
    stages = list(backbone.width_stages())
    if not stages:
        raise ValueError(f'{type(backbone).__name__} defines no width_stages(), so it runs '
                         'at one width for all layers only: a stage-width search needs '
                         'its stages (use tools/build_lookup_table.py for uniform widths)')
    if scorer.space is not None:
        grid = WidthGrid(scorer.space.width_range, scorer.space.width_step)
    else:
        hook = _config_hook(cfg)
        if hook is None:
            raise ValueError('the checkpoint holds no record of its trained widths and the '
                             'config no MutualLearningHook to read them from')
        grid = hook.grid
    widths = search_grid(grid, search_step)
    views = list(dict.fromkeys((s.scale, s.frames) for s in trained_subnets(
        cfg, [1.0], checkpoint=scorer.checkpoint)))
    uniform = [Subnet(w, s, f) for s, f in views for w in widths]
    probe = [Subnet(normalize_width([widths[-1]] * (len(stages) - 1) + [widths[0]]), s, f)
             for s, f in views] if len(stages) > 1 and len(widths) > 1 else []
    try:
        check_trained(uniform + probe, scorer.space, allow_untrained)
    except ValueError as err:
        raise ValueError(f'{err} (tools/search_subnet.py: --allow-untrained)') from None

    identity = dict(checkpoint=osp.abspath(checkpoint), checkpoint_bytes=os.path.getsize(
        checkpoint), held_out=len(scorer.split.held_out), total=scorer.split.total,
        calibration_batches=num_batches, widths=widths, stages=stages,
        views=[Subnet(1.0, s, f).key for s, f in views], metric=metric)
    state_path = osp.join(out_dir, STATE_FILE)
    state = _read_json(state_path)
    if state is not None and state['identity'] != identity:
        raise ValueError(f'{state_path} was written by a search with other settings '
                         f'({"; ".join(_differences(state["identity"], identity))}): '
                         'give another --out-dir, or delete it to start over')
    state = state or dict(identity=identity, entries={})
    entries: Dict[str, dict] = state['entries']
    cached_before = set(entries)

    table, latency_check, built_runtime = None, None, None
    if runtime is not None:
        built_runtime = build_runtime(runtime, threads=threads, repeats=latency_repeats)
        table, latency_check = _latency_table(scorer, built_runtime, widths, views, stages,
                                              out_dir, latency_checks, log)

    cost = 'latency_ms' if latency_budgets and not flops_budgets else 'flops'
    bound = evaluation_bound(len(stages), len(widths), len(views))
    reused, evaluated = set(), []
    if cached_before:
        log(f'resuming: {len(cached_before)} evaluated candidates in {state_path}')

    def evaluate(subnet: Subnet) -> dict:
        key = subnet.key
        if key in entries:
            if key in cached_before:
                reused.add(key)
        else:
            record = dict(key=key, subnet=subnet.as_dict(), uniform=not subnet.stage_widths,
                          **scorer.score(subnet))
            entries[key] = record
            evaluated.append(key)
            _write_json(state_path, state)
            log(f'[{len(entries)}/{bound}] {key}: {record["metric"]} {record["score"]:.4f}, '
                f'{record["flops"] / 1e6:.3f} MFLOPs ({time.perf_counter() - start:.1f} s)')
        record = entries[key]
        if table is not None:
            record = dict(record, latency_ms=table.predict(subnet))
        return record

    def done(record: dict) -> bool:
        return ((not flops_budgets or record['flops'] < min(flops_budgets)) and
                (not latency_budgets or record['latency_ms'] < min(latency_budgets)))

    paths = {}
    for scale, frames in views:
        paths[Subnet(1.0, scale, frames).key] = greedy_walk(
            widths, len(stages), (scale, frames), evaluate, cost, done)
        for subnet in uniform:
            if (subnet.scale, subnet.frames) == (scale, frames):
                evaluate(subnet)
    records = [evaluate(_subnet_of(r)) for r in entries.values()]

    answers, picks = [], []
    for kind, unit, budgets in (('flops', 'FLOPs', flops_budgets),
                                ('latency_ms', 'ms', latency_budgets)):
        for budget in budgets:
            best = best_under(records, kind, budget)
            best_uniform = best_under([r for r in records if r['uniform']], kind, budget)
            answers.append(dict(cost=kind, budget=budget, chosen=best, uniform=best_uniform))
            picks += [_subnet_of(r) for r in (best, best_uniform) if r is not None]
            log(f'budget {budget:g} {unit}: ' + (
                f'{best["key"]} ({best["score"]:.4f}); best uniform '
                f'{best_uniform["key"] if best_uniform else "none"}'
                + (f' ({best_uniform["score"]:.4f})' if best_uniform else '')
                if best else 'no evaluated subnet fits'))
    search_seconds = time.perf_counter() - start
    picks = list(dict.fromkeys(picks))

    files = {}
    if picks:
        calibrated = osp.join(out_dir, CALIBRATED_FILE)
        calibrate_checkpoint(cfg, checkpoint, calibrated, picks, num_batches,
                             allow_untrained=allow_untrained)
        rows, table_metric = build_lookup_table(
            cfg, calibrated, picks, scorer.metric, latency=runtime or False,
            num_batches=num_batches, allow_untrained=allow_untrained, threads=threads,
            onnx_dir=osp.join(out_dir, 'onnx'), on_row=lambda row: None)
        files = save_table(rows, osp.join(out_dir, 'table'), table_metric)
        files['calibrated checkpoint'] = calibrated
    commands = {}
    for answer in answers:
        if answer['chosen'] is not None:
            key = answer['chosen']['key']
            commands[key] = export_command(config_path, osp.join(out_dir, CALIBRATED_FILE),
                                           _subnet_of(answer['chosen']),
                                           osp.join(out_dir, 'export', key),
                                           onnx=runtime == 'onnxruntime')
    seconds = scorer.seconds
    result = dict(
        metric=scorer.metric, cost=cost, stages=stages, search_grid=widths,
        views=identity['views'], held_out=scorer.split.as_dict(), budgets=answers,
        paths=paths, candidates_evaluated=len(evaluated), candidates_reused=len(reused),
        candidates_cached=len(entries), evaluation_bound=bound,
        search_wall_s=search_seconds, wall_s=time.perf_counter() - start,
        seconds_per_candidate=(sum(seconds) / len(seconds)) if seconds else None,
        runtime=runtime, threads=built_runtime.threads if built_runtime else None,
        latency_table=(dict(file=osp.join(out_dir, LATENCY_FILE),
                            mean_abs_error_pct=latency_check['mean_abs_error_pct'],
                            max_abs_error_pct=latency_check['max_abs_error_pct'])
                       if latency_check else None),
        files=files, export_commands=commands)
    _write_json(osp.join(out_dir, RESULT_FILE), result)
    log(f'{len(evaluated)} candidates evaluated, {len(reused)} reused from the cache '
        f'(at most {bound}); search {search_seconds:.1f} s'
        + (f', {result["seconds_per_candidate"]:.2f} s per candidate' if seconds else '')
        + f'; total {result["wall_s"]:.1f} s')
    for key, command in commands.items():
        log(f'export {key}: {command}')
    return result


def _subnet_of(record: dict) -> Subnet:
    return Subnet(**record['subnet'])


def _latency_table(scorer, runtime, widths, views, stages, out_dir, checks, log):
    """The per-stage latency table of ``runtime``, read from ``out_dir`` when a
    run with the same settings built it, else built, checked and saved."""
    path = osp.join(out_dir, LATENCY_FILE)
    identity = dict(runtime=runtime.name, threads=runtime.threads, repeats=runtime.repeats,
                    widths=widths, stages=stages,
                    views=[Subnet(1.0, s, f).key for s, f in views], checks=checks)
    saved = _read_json(path)
    if saved is not None and saved.get('identity') == identity:
        log(f'latency table: reused {path}')
        table = StageLatencyTable(saved)
    else:
        log(f'latency table: timing every stage in {runtime.name} '
            f'({runtime.threads} threads)')
        table = build_latency_table(scorer.model, runtime, widths, views, scorer.example,
                                    out_dir, progress=log)
        table.data['identity'] = identity
        table.data['check'] = check_latency_table(table, scorer.model, runtime, widths,
                                                  views, scorer.example, out_dir, checks)
        _write_json(path, table.data)
    check = table.data['check']
    log(f'latency table vs end-to-end ({len(check["subnets"])} random subnets): mean '
        f'error {check["mean_abs_error_pct"]:.1f} %, max {check["max_abs_error_pct"]:.1f} %')
    return table, check
