"""The study runner (studies/study.py) and its studies: Fashion-MNIST
(studies/replication: its plan, resumable runs, the plumbing equivalence it
relies on, the report's comparisons) and the demo tasks' (demo_studies.py)."""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.runner import IterBasedTrainLoop

from .helpers import write_fake_fashion_mnist

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from studies import study  # noqa: E402
from studies.replication import plan, report, runner  # noqa: E402
from studies.replication.plan import RunSpec  # noqa: E402


@pytest.fixture
def settings(tmp_path):
    data = write_fake_fashion_mnist(tmp_path / 'fm', num_train=48, num_test=20)
    return runner.Settings(data_root=str(data), results_dir=str(tmp_path / 'results'),
                           work_dir=str(tmp_path / 'work'), widen_factor=0.25,
                           calib_batches=1, test_batch_size=20)


@pytest.fixture
def fm(settings):
    return runner.FashionMNIST(settings)


def test_plan_names_are_unique_and_merge_the_calibration_ablation():
    runs = plan.plan_runs(list(plan.PLANS))
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    # the calibration-size ablation is evaluated on the trend's MutualNet model
    mutual = [r for r in runs if r.name == f'mutualnet_i{plan.ABLATION_BUDGET}_s0']
    assert len(mutual) == 1 and mutual[0].calibration_sizes == plan.CALIBRATION_SIZES
    # every budget of the trend has MutualNet, US-Net and the three I-Nets
    for iters in plan.BUDGETS:
        assert {r.name for r in runs if r.iters == iters and r.seed == 0 and
                r.group == 'trend'} >= {f'mutualnet_i{iters}_s0', f'usnet_i{iters}_s0',
                                        f'inet_w1-r32_i{iters}_s0',
                                        f'inet_w0.5-r24_i{iters}_s0',
                                        f'inet_w0.25-r20_i{iters}_s0'}
    # cheapest information first: the longest budget comes last
    assert [r.iters for r in runs][-1] == max(plan.BUDGETS)
    assert RunSpec('mutualnet', 10, distill='gt', lr=0.05, warmup=False).name == \
        'mutualnet_gt_lr0.05_nowarmup_i10_s0'
    with pytest.raises(ValueError, match='point'):
        RunSpec('inet', 10)
    with pytest.raises(ValueError, match='unknown plan group'):
        plan.plan_runs(['trends'])


def test_missing_data_names_the_package_to_install(tmp_path):
    with pytest.raises(SystemExit, match='apt-get install dataset-fashion-mnist'):
        runner.check_data(str(tmp_path))


def test_an_interrupted_run_resumes_and_a_finished_one_is_read_back(fm, settings,
                                                                    monkeypatch):
    spec = RunSpec('inet', 4, point=(0.5, 20), batch_size=8, calibration_sizes=(2,))
    monkeypatch.setattr(runner, 'CHECKPOINT_EVERY', 2)
    stock_run_iter = IterBasedTrainLoop.run_iter

    def dies_at_iteration_3(loop, data_batch):
        if loop.runner.iter == 3:
            raise KeyboardInterrupt('killed')
        stock_run_iter(loop, data_batch)

    monkeypatch.setattr(IterBasedTrainLoop, 'run_iter', dies_at_iteration_3)
    with pytest.raises(KeyboardInterrupt):
        study.execute(fm, spec, log=lambda msg: None)
    assert study.load_result(fm, spec) is None
    saved = torch.load(osp.join(settings.work_dir, spec.name, 'iter_2.pth'),
                       map_location='cpu', weights_only=False)['state_dict']
    first_weights = []

    def records_the_weights_it_starts_from(loop, data_batch):
        if not first_weights:
            first_weights.append({k: v.clone() for k, v in
                                  loop.runner.model.state_dict().items()})
        stock_run_iter(loop, data_batch)

    monkeypatch.setattr(IterBasedTrainLoop, 'run_iter', records_the_weights_it_starts_from)
    messages = []
    result = study.execute(fm, spec, log=messages.append)
    # training goes on from the checkpoint's weights, not from a new initialisation
    assert set(first_weights[0]) == set(saved)
    for key, value in saved.items():
        assert torch.equal(first_weights[0][key], value), key
    assert any('resuming at iteration 2' in m for m in messages)
    assert result['iterations'] == 4 and result['resumed_from'] == 2
    assert len(result['rows']) == 1
    row = result['rows'][0]
    assert (row['width'], row['resolution']) == (0.5, 20) and 0 <= row['top1'] <= 100
    assert set(result['calibration_sizes']) == {'2'}
    with open(study.result_path(fm, spec)) as f:
        assert json.load(f)['spec']['name'] == spec.name == 'inet_w0.5-r20_b8_i4_s0'

    def no_training(*args, **kwargs):
        raise AssertionError('a finished run must not train again')

    monkeypatch.setattr(study, 'train', no_training)
    assert study.execute(fm, spec, log=lambda msg: None) == result
    assert not osp.exists(study.lock_path(fm, spec))


def test_a_run_locked_by_a_live_process_is_left_alone(fm, settings):
    import os
    spec = RunSpec('inet', 4, point=(0.5, 20), batch_size=8)
    os.makedirs(settings.work_dir)
    lock = study.lock_path(fm, spec)
    with open(lock, 'w') as f:
        f.write(str(os.getppid()))  # alive: the process that started pytest
    assert study.running_elsewhere(fm, spec)
    with pytest.raises(RuntimeError, match='being run by another process'):
        study.execute(fm, spec, log=lambda msg: None)
    assert study.run_all(fm, [spec], 2, log=lambda msg: None, child=[]) == []
    with open(lock, 'w') as f:
        f.write('999999999')  # no such process: a stale lock of a killed run
    assert not study.running_elsewhere(fm, spec)


def test_hook_at_one_width_without_random_members_is_the_stock_step(fm):
    """The plumbing check: I-Net 1x-32 under the hook trains exactly as the same
    network without the hook (the stock train step)."""
    states = {}
    for method in ('inet', 'plain'):
        spec = RunSpec(method, 3, point=(1.0, 32), batch_size=8)
        info = study.train(study.run_config(fm, spec), spec.name, log=lambda msg: None)
        states[method] = torch.load(info['checkpoint'], map_location='cpu',
                                    weights_only=False)['state_dict']
    assert set(states['inet']) == set(states['plain'])
    for key, value in states['plain'].items():
        torch.testing.assert_close(states['inet'][key], value, rtol=1e-5, atol=1e-6,
                                   msg=key)


def test_mutualnet_run_evaluates_the_grid_and_the_cli_reports_it(fm, settings, tmp_path,
                                                                  capsys):
    spec = RunSpec('mutualnet', 2, batch_size=8)
    result = study.execute(fm, spec, log=lambda msg: None)
    assert len(result['rows']) == len(plan.EVAL_WIDTHS) * len(plan.RESOLUTIONS)
    flops = {(r['width'], r['resolution']): r['mflops'] for r in result['rows']}
    assert flops[(1.0, 20)] < flops[(1.0, 32)] and flops[(0.25, 32)] < flops[(1.0, 32)]
    assert {'full.loss_cls', 'min.loss_kl', 'rand0.loss_kl'} <= set(result['final_losses'])

    import studies.replicate_fashion_mnist as cli
    common = ['--results-dir', settings.results_dir, '--work-dir', settings.work_dir,
              '--data-root', settings.data_root]
    cli.main(['--list', *common])
    assert 'pending  mutualnet_i600_s0' in capsys.readouterr().out
    out = tmp_path / 'report'
    out.mkdir()
    summary = cli.main(['--report', '--out-dir', str(out), *common])
    assert summary['runs'][spec.name]['seconds_per_iter'] == result['seconds_per_iter']
    assert (out / 'summary.json').exists()
    with pytest.raises(SystemExit, match='no such run'):
        cli.main(['--only', 'mutualnet_i7_s0', *common])


def _fake_run(method, iters, rows, seed=0, point=None, **spec):
    spec = RunSpec(method, iters, seed=seed, point=point, **spec).as_dict()
    return dict(spec=spec, rows=[dict(width=w, resolution=r, mflops=f, top1=a)
                                 for w, r, f, a in rows],
                seconds_per_iter=0.1, train_seconds=1, eval_seconds=1, finished='',
                versions=dict(device='cpu'), final_losses={}, calibration_sizes={})


def test_report_compares_at_equal_flops():
    it = plan.BUDGETS[0]
    grid = [(1.0, 32, 12.0, 90.0), (1.0, 24, 7.0, 88.0), (0.5, 32, 3.5, 86.0),
            (0.5, 24, 2.2, 85.0), (0.25, 32, 1.3, 80.0), (0.25, 20, 0.6, 78.0)]
    us = [(1.0, 32, 12.0, 91.0), (1.0, 24, 7.0, 60.0), (0.5, 32, 3.5, 87.0),
          (0.5, 24, 2.2, 50.0), (0.25, 32, 1.3, 84.0), (0.25, 20, 0.6, 40.0)]
    runs = [_fake_run('mutualnet', it, grid), _fake_run('usnet', it, us),
            _fake_run('inet', it, [(1.0, 32, 12.0, 92.0)], point=(1.0, 32)),
            _fake_run('inet', it, [(0.5, 24, 2.2, 84.0)], point=(0.5, 24)),
            _fake_run('inet', it, [(0.25, 20, 0.6, 79.0)], point=(0.25, 20))]
    summary = report.summarize(runs)
    points = {p['point']: p for p in summary['trend'][0]['points']}
    assert summary['longest_complete_budget'] == it
    # 0.5x-24 costs 2.2: MutualNet's best within it is 85 (itself); US-Net's is
    # 84 at 0.25x-32 (its 0.5x-24 is 50)
    p = points['0.5x-24']
    assert (p['mutualnet_budget'], p['usnet_budget'], p['usnet_budget_config']) == \
        (85.0, 84.0, '0.25x-32')
    assert p['gap_mutual_usnet'] == pytest.approx(1.0)
    assert p['gap_mutual_inet'] == pytest.approx(1.0)
    assert points['1x-32']['gap_mutual_usnet'] == pytest.approx(-1.0)
    assert points['0.25x-20']['gap_mutual_usnet'] == pytest.approx(38.0)
    assert report.frontier(runs[0]['rows'])[-1]['top1'] == 90.0
    # seeds: mean and spread over the seeds found
    seeds = [_fake_run('mutualnet', plan.SEED_BUDGET, [(w, r, f, a + s) for w, r, f, a in grid],
                       seed=s) for s in (0, 1, 2)]
    s = report.seeds(seeds)['methods']['mutualnet']['points']['1x-32']['same']
    assert s['values'] == [90.0, 91.0, 92.0] and s['mean'] == 91.0 and s['std'] == 1.0


# ----------------------------------------------------------- the demo studies
def test_usnet_twin_of_a_demo_config_differs_only_in_the_views():
    from studies.demo_studies import DemoRun, DemoStudy
    s = DemoStudy('usnet')
    for task in ('detection', 'video'):
        mutual, usnet = (s.config(DemoRun(task, m)) for m in ('mutualnet', 'usnet'))
        views = [t for t in usnet.train_dataloader.dataset.pipeline
                 if t['type'] == 'MultiResolution']
        full = [t for t in mutual.train_dataloader.dataset.pipeline
                if t['type'] == 'MultiResolution'][0]
        assert len(views) == 1 and views[0]['scales'] == full['scales'][:1]
        assert views[0].get('frames') == (full['frames'][:1] if full.get('frames') else None)
        assert usnet.custom_hooks[0]['multi_resolution'] is False
        # everything else is the same config
        for cfg in (mutual, usnet):
            cfg.train_dataloader.dataset.pipeline = None
            cfg.custom_hooks[0].pop('multi_resolution', None)
        assert mutual.to_dict() == usnet.to_dict()


def test_demo_usnet_study_trains_both_and_plots_their_frontiers(tmp_path, monkeypatch):
    from studies import demo_studies
    monkeypatch.chdir(tmp_path)  # the script works from its workspace
    out = tmp_path / 'out'
    summary = demo_studies.main(['usnet', '--quick', '--tasks', 'video', '--workspace',
                                 str(tmp_path), '--results-dir', str(out)])
    video = summary['video_i2']
    assert video['iterations'] == 2 and video['compared'] == len(video['points']) > 0
    for method in ('mutualnet', 'usnet'):
        with open(out / f'video_{method}_i2.json') as f:
            result = json.load(f)
        # the same grid for both: 4 widths x 3 sizes x 3 frame counts
        assert len(result['rows']) == 4 * 3 * 3 and result['method'] == method
        assert [v['iteration'] for v in result['validations']] == [2]
    assert (out / 'video_i2.png').exists() and (out / 'summary.json').exists()


@pytest.mark.parametrize('task', ['detection', 'video'])
def test_demo_recipe_sgd_puts_back_the_provided_optimizer_and_nothing_else(task):
    from studies.demo_studies import TASKS, DemoRun, DemoStudy
    from mutual_mm.utils import load_config
    spec, s = TASKS[task], DemoStudy('recipe')
    adamw, sgd = (s.config(DemoRun(task, r, seed=3)) for r in ('adamw', 'sgd'))
    provided = load_config(osp.join(ROOT, spec['provided'])).optim_wrapper.optimizer
    demo = load_config(osp.join(ROOT, spec['config']))
    assert adamw.optim_wrapper.optimizer == demo.optim_wrapper.optimizer
    assert adamw.optim_wrapper.optimizer['type'] == 'AdamW'
    expected = dict(provided, lr=spec['sgd_lr'] or provided['lr'])
    assert sgd.optim_wrapper.optimizer == expected and expected['type'] == 'SGD'
    assert sgd.randomness == dict(seed=3) and sgd.train_cfg.val_interval == 100
    # the demo's schedule, clipping and everything else are the same
    assert adamw.train_cfg.max_iters == demo.train_cfg.max_iters
    for cfg in (adamw, sgd):
        cfg.optim_wrapper.optimizer = None
    assert adamw.to_dict() == sgd.to_dict()


def test_demo_study_shortened_schedule_ends_its_cosine_at_the_last_iteration():
    from studies.demo_studies import DemoRun, DemoStudy
    cfg = DemoStudy('batch_views').config(DemoRun('detection', 'batch', iters=300))
    assert cfg.train_cfg.max_iters == 300 == cfg.param_scheduler[-1]['end']
    assert cfg.train_cfg.val_interval == 300
    assert cfg.custom_hooks[0]['batch_views']['scales'][0] == \
        next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'Resize')['scale']
