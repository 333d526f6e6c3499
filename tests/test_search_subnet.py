"""The stage-width search (tools/search_subnet.py): the greedy walk, the held-out
split, resuming, the written table, the refusal of untrained stage widths, the
latency table, and the command as a new process."""
import copy
import json
import math
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import Subnet, load_table, select_subnet
from mutual_mm.deploy.runtimes import build_runtime
from mutual_mm.deploy.search import (HeldOutScorer, check_budgets, evaluation_bound,
                                     greedy_walk, held_out_split, search_grid, search_subnet)
from mutual_mm.deploy.search import held_out as held_out_module
from mutual_mm.engine.trained_space import META_KEY
from mutual_mm.ops import WidthGrid

from .helpers import write_fake_fashion_mnist

pytestmark = pytest.mark.core

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ITERS = 6
#: full width costs 0.32 MFLOPs at 32 px and 0.24 at 24 px: the 32 px walk takes a
#: step or two, the 24 px one none; the search grid is 0.25, 1 (--search-step 0.75)
BUDGETS = [0.3e6, 0.25e6]
SEARCH = dict(flops_budgets=BUDGETS, held_out=16, search_step=0.75, num_batches=1)


def tiny_cfg(root, work_dir, iters=ITERS):
    """A Fashion-MNIST-format classifier: SlimMobileNetV1 (1/8 wide), two views
    (32, 24 px), width grid 0.25..1 step 0.25, stage widths trained."""
    def loader(split, pipeline, shuffle, batch_size):
        return dict(batch_size=batch_size, num_workers=0, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=shuffle),
                    dataset=dict(type='MNISTIdxDataset', data_root=str(root), split=split,
                                 pipeline=pipeline, test_mode=split == 'test'))
    pack = dict(type='PackClsInputs')
    train = [dict(type='MultiResolution', scales=[32, 24],
                  transforms=[dict(type='Resize', keep_ratio=False), pack])]
    test = [dict(type='Resize', scale=32, keep_ratio=False), pack]
    return Config(dict(
        default_scope='mmengine',
        model=dict(type='MutualImageClassifier',
                   backbone=dict(type='SlimMobileNetV1', widen_factor=0.125,
                                 out_indices=(4,)),
                   head=dict(type='MutualLinearClsHead', num_classes=10, in_channels=128),
                   data_preprocessor=dict(type='ImgDataPreprocessor', mean=[72.9] * 3,
                                          std=[90.0] * 3)),
        train_dataloader=loader('train', train, True, 16),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        test_dataloader=loader('test', test, False, 20),
        test_evaluator=dict(type='TopKAccuracy', topk=(1,)),
        test_cfg=dict(type='TestLoop'),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=iters)),
        custom_hooks=[dict(type='MutualLearningHook', width_range=(0.25, 1.0),
                           width_step=0.25, num_random=1, stage_widths=True)],
        randomness=dict(seed=0), log_processor=dict(by_epoch=False), log_level='WARNING',
        visualizer=dict(type='Visualizer', vis_backends=[]), work_dir=str(work_dir)))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(cfg, its dumped file, the checkpoint, the folder)."""
    tmp = tmp_path_factory.mktemp('search')
    root = write_fake_fashion_mnist(tmp / 'fm', num_train=96, num_test=40)
    cfg = tiny_cfg(root, tmp / 'work')
    Runner.from_cfg(copy.deepcopy(cfg)).train()
    cfg_file = tmp / 'config.py'
    cfg.dump(str(cfg_file))
    return cfg, str(cfg_file), str(tmp / 'work' / f'iter_{ITERS}.pth'), tmp


@pytest.fixture(scope='module')
def searched(trained, monkeypatch_module):
    """A search interrupted after 3 evaluations, then the same call resumed:
    (the resumed result, its out dir, keys cached by the interrupted run, keys
    the resumed run evaluated)."""
    cfg, _, checkpoint, tmp = trained
    out = str(tmp / 'out')
    score = HeldOutScorer.score
    calls = []

    def dies_after_three(self, subnet):
        if len(calls) == 3:
            raise KeyboardInterrupt('interrupted')
        calls.append(subnet.key)
        return score(self, subnet)
    monkeypatch_module.setattr(HeldOutScorer, 'score', dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        search_subnet(cfg, checkpoint, out, **SEARCH)
    cached = set(json.load(open(osp.join(out, 'search_state.json')))['entries'])
    assert cached == set(calls)

    evaluated = []

    def records(self, subnet):
        evaluated.append(subnet.key)
        return score(self, subnet)
    monkeypatch_module.setattr(HeldOutScorer, 'score', records)
    result = search_subnet(cfg, checkpoint, out, **SEARCH)
    monkeypatch_module.setattr(HeldOutScorer, 'score', score)
    return result, out, cached, evaluated


@pytest.fixture(scope='module')
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


# ------------------------------------------------------------ pure logic
def test_search_grid_keeps_min_and_max_and_refuses_other_steps():
    grid = WidthGrid((0.25, 1.0), 0.25)
    assert search_grid(grid) == [0.25, 0.5, 0.75, 1.0]
    assert search_grid(grid, 0.5) == [0.25, 0.5, 1.0]
    assert search_grid(grid, 0.75) == [0.25, 1.0]
    with pytest.raises(ValueError, match=r"--search-step 0.3 .*step 0.25.*valid: 0.25, 0.5"):
        search_grid(grid, 0.3)


def test_bad_budgets_and_runtimes_are_named():
    with pytest.raises(ValueError, match=r'--flops-budgets -1.*valid: a positive'):
        check_budgets([-1], [], None)
    with pytest.raises(ValueError, match=r'--latency-budgets needs --runtime'):
        check_budgets([], [2.0], None)
    with pytest.raises(ValueError, match=r"runtime 'nope' is not registered; valid: .*"
                                         r"'onnxruntime'"):
        check_budgets([1e6], [], 'nope')
    with pytest.raises(ValueError, match=r"'onnxruntime-int8' cannot time.*valid: "
                                         r'onnxruntime, torch'):
        check_budgets([1e6], [], 'onnxruntime-int8')


def test_greedy_walk_lowers_the_cheapest_loss_first_and_stops_under_the_budget():
    widths = [0.25, 0.5, 1.0]
    value = [3.0, 1.0, 2.0]  # what narrowing each stage costs in score, per FLOP
    calls = []

    def evaluate(subnet):
        calls.append(subnet.key)
        w = subnet.width if subnet.stage_widths else (subnet.width,) * 3
        flops = sum(10 * x for x in w)
        score = -sum(v * 10 * (1 - x) for v, x in zip(value, w))
        return dict(key=subnet.key, flops=flops, score=score)
    path = greedy_walk(widths, 3, (32, None), evaluate, 'flops',
                       done=lambda r: r['flops'] < 22)
    # stage 1 (cheapest loss) is lowered to the floor first, then stage 2
    assert path == ['w1_s32', 'w1-0.5-1_s32', 'w1-0.25-1_s32', 'w1-0.25-0.5_s32']
    assert len(calls) <= evaluation_bound(3, 3, 1)
    first = list(calls)
    calls.clear()  # deterministic: the same walk, the same evaluations in order
    assert greedy_walk(widths, 3, (32, None), evaluate, 'flops',
                       done=lambda r: r['flops'] < 22) == path and calls == first


def test_onnxruntime_times_one_module_on_its_input(tmp_path):
    pytest.importorskip('onnxruntime')
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    ms = build_runtime('onnxruntime', threads=1, repeats=2).module_latency_ms(
        module, torch.zeros(1, 3, 8, 8), str(tmp_path / 'part.onnx'))
    assert math.isfinite(ms) and ms > 0
    with pytest.raises(ValueError, match="'onnxruntime-int8' does not time parts"):
        build_runtime('onnxruntime-int8').module_latency_ms(module, torch.zeros(1, 3, 8, 8))


# ------------------------------------------------------- on a trained model
def test_held_out_is_the_last_n_training_samples_and_never_calibrates(trained,
                                                                      monkeypatch):
    cfg, _, _, _ = trained
    warnings = []
    monkeypatch.setattr(held_out_module, 'print_log', lambda msg, **kw: warnings.append(msg))
    split = held_out_split(cfg, 16)
    assert split.held_out == list(range(80, 96)) and split.total == 96
    assert not set(split.held_out) & set(split.calibration)
    assert split.calibration == list(range(80)) and split.seen_in_training == 16
    assert len(warnings) == 1 and 'uses 16 of them' in warnings[0]
    restricted = copy.deepcopy(cfg)
    restricted.train_dataloader.dataset.indices = 80  # trains on the first 80 only
    split = held_out_split(restricted, 16)
    assert split.seen_in_training == 0 and len(warnings) == 1
    with pytest.raises(ValueError, match=r'--held-out 96: .* 96 samples; valid: 1 .. 95'):
        held_out_split(cfg, 96)


def test_picks_fit_their_budget_and_beat_the_uniform_ones(searched):
    result, out, _, _ = searched
    state = json.load(open(osp.join(out, 'search_state.json')))['entries']
    assert len(result['budgets']) == len(BUDGETS)
    for answer in result['budgets']:
        chosen, uniform = answer['chosen'], answer['uniform']
        assert chosen['flops'] <= answer['budget'] and uniform['flops'] <= answer['budget']
        fitting = [r['score'] for r in state.values() if r['flops'] <= answer['budget']]
        assert chosen['score'] == max(fitting)
        assert chosen['score'] >= uniform['score'] and uniform['uniform']
    # the walk at 32 px left the full width; every uniform subnet was evaluated
    assert len(result['paths']['w1_s32']) >= 2
    uniform_keys = {f'w{w:g}_s{s}' for w in (0.25, 1) for s in (32, 24)}
    assert uniform_keys <= set(state)
    assert result['candidates_cached'] <= result['evaluation_bound']
    assert result['seconds_per_candidate'] > 0


def test_an_interrupted_search_resumes_without_evaluating_again(searched):
    result, _, cached, evaluated = searched
    assert len(cached) == 3 and not cached & set(evaluated)
    assert result['candidates_reused'] == 3
    assert result['candidates_evaluated'] == len(evaluated) == result['candidates_cached'] - 3


def test_the_table_holds_the_picks_on_the_test_set(searched, trained):
    result, out, _, _ = searched
    rows = load_table(osp.join(out, 'table.csv'))
    keys = {row.subnet.key for row in rows}
    for answer in result['budgets']:
        assert {answer['chosen']['key'], answer['uniform']['key']} <= keys
        best = select_subnet(osp.join(out, 'table.json'), max_flops=answer['budget'])
        assert best.subnet.key in keys and best.flops <= answer['budget']
        chosen = [r for r in rows if r.subnet.key == answer['chosen']['key']][0]
        assert chosen.flops == answer['chosen']['flops']  # same view, same input shape
        pick = select_subnet([chosen], max_flops=answer['budget'])
        assert pick.subnet == Subnet(**answer['chosen']['subnet'])
    calibrated = torch.load(osp.join(out, 'calibrated.pth'), weights_only=False)
    assert {r.subnet.network.key for r in rows} - {'w1_s32'} <= \
        set(calibrated['bn_calibration'])
    for key, command in result['export_commands'].items():
        assert 'tools/export_subnet.py' in command and 'calibrated.pth' in command


def test_stage_widths_on_a_uniform_trained_checkpoint_are_refused(trained, tmp_path):
    cfg, _, checkpoint, _ = trained
    ckpt = torch.load(checkpoint, weights_only=False)
    ckpt['meta'][META_KEY]['stage_widths'] = False
    uniform_only = str(tmp_path / 'uniform.pth')
    torch.save(ckpt, uniform_only)
    with pytest.raises(ValueError, match=r'uniform widths only.*--allow-untrained'):
        search_subnet(cfg, uniform_only, str(tmp_path / 'out'), **SEARCH)


def test_the_command_as_the_readme_writes_it(searched, trained, tmp_path):
    """A new process, resuming from the in-process search's cache (same settings):
    nothing is evaluated again, the answers are the same."""
    result, searched_out, _, _ = searched
    _, cfg_file, checkpoint, _ = trained
    out = tmp_path / 'cli'
    out.mkdir()
    shutil.copy(osp.join(searched_out, 'search_state.json'), out / 'search_state.json')
    budgets = [f'{b:g}' for b in BUDGETS]
    # a latency budget no subnet exceeds: the walk (FLOPs) is the in-process one's
    done = subprocess.run(
        [sys.executable, 'tools/search_subnet.py', cfg_file, checkpoint,
         '--flops-budgets', *budgets, '--latency-budgets', '1000', '--runtime', 'torch',
         '--threads', '1', '--held-out', '16', '--search-step', '0.75',
         '--calibration-batches', '1', '--latency-repeats', '2', '--latency-checks', '3',
         '--out-dir', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cached = result['candidates_cached']
    assert f'resuming: {cached} evaluated candidates' in done.stdout
    assert f'0 candidates evaluated, {cached} reused from the cache' in done.stdout
    assert 'export_subnet.py' in done.stdout
    for name in ('search_state.json', 'latency_table.json', 'search.json', 'table.csv',
                 'table.json', 'calibrated.pth'):
        assert (out / name).is_file(), name
    again = json.load(open(out / 'search.json'))
    flops_answers = [a for a in again['budgets'] if a['cost'] == 'flops']
    assert [a['chosen']['key'] for a in flops_answers] == \
        [a['chosen']['key'] for a in result['budgets']]
    assert again['threads'] == 1 and math.isfinite(again['latency_table']['mean_abs_error_pct'])
    rows = load_table(str(out / 'table.csv'))
    assert all(r.latency_ms > 0 and r.latency_runtime == 'torch' for r in rows)
    # the latency table: every stage timed per view, checked against end-to-end runs
    latency = json.load(open(out / 'latency_table.json'))
    assert set(latency['stages']['s32']) == {'stem', 'layer1', 'layer2', 'layer3', 'layer4',
                                             'layer5'}
    assert set(latency['rest']) == {'s32', 's24'}
    assert len(latency['check']['subnets']) == 3 and latency['identity']['threads'] == 1
    assert all(math.isfinite(latency['check'][k])
               for k in ('mean_abs_error_pct', 'max_abs_error_pct'))
    assert 'latency table vs end-to-end (3 random subnets): mean error' in done.stdout
