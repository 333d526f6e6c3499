"""BN calibration per subnet, and testing at a calibrated subnet."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mutual_mm  # noqa: F401
from mutual_mm.deploy import Subnet, calibrate_bn, trained_subnets
from mutual_mm.deploy.bn_calibration import bn_depths, relative_differences
from mutual_mm.hosts import HOSTS, HostAdapter
from mutual_mm.models.backbones.base import SlimBackboneMixin

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


class _TinySlim(SlimBackboneMixin, nn.Module):
    """conv(3->16) + BN, slimmable: the smallest model with one BN to check."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.make_slim()

    full_out_channels = (16, )

    def forward(self, x):
        return (self.bn(self.conv(x)), )


class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = _TinySlim()

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.backbone(inputs)


@HOSTS.register_module()
class _TinyHost(HostAdapter):
    """A family of its own: a new family is one adapter."""
    host_types = (_TinyModel, )
    feature_part = ()  # no extract_feat: calibration runs the tensor forward

    def scores(self, inputs, data_samples=None):
        return self.model(inputs)


def test_statistics_equal_the_exact_batch_statistics():
    torch.manual_seed(0)
    model = _TinyModel()
    batches = [dict(inputs=torch.randn(4, 3, 8, 8) * 3 + 1) for _ in range(3)]
    stats = calibrate_bn(model, iter(batches), num_batches=3, width=0.5)
    mean, var = stats['backbone.bn']
    assert mean.shape == (8, )  # active_channels(16, 0.5)
    conv = model.backbone.conv
    feats = torch.cat([nn.functional.conv2d(b['inputs'], conv.weight[:8], conv.bias[:8],
                                            padding=1) for b in batches])
    # the statistics of all calibration values at once (unbiased variance)
    torch.testing.assert_close(mean, feats.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var, feats.var((0, 2, 3), unbiased=True), rtol=1e-5,
                               atol=1e-6)
    assert model.backbone.bn.momentum == 0.1  # restored
    assert model.training  # modes restored


class _TinySlim3d(SlimBackboneMixin, nn.Module):
    """conv3d(3->16) + BN3d."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm3d(16)
        self.make_slim()

    full_out_channels = (16, )

    def forward(self, x):
        return (self.bn(self.conv(x)), )


def _one_bn_model(dims: int):
    model = _TinyModel()
    if dims == 3:
        model.backbone = _TinySlim3d()
    return model


def _split(samples, sizes):
    out, start = [], 0
    for size in sizes:
        out.append(dict(inputs=samples[start:start + size]))
        start += size
    return out


@pytest.mark.parametrize('dims', [2, 3])
@pytest.mark.parametrize('sizes', [[7, 1], [3, 3, 2], [1] * 8])
def test_statistics_do_not_depend_on_how_the_set_is_batched(dims, sizes):
    torch.manual_seed(0)
    samples = torch.randn(8, 3, *([4] * (dims - 2)), 6, 6) * 2 + 0.5
    model = _one_bn_model(dims)
    whole = calibrate_bn(model, iter([dict(inputs=samples)]), 1, width=0.5)
    batched = calibrate_bn(model, iter(_split(samples, sizes)), len(sizes), width=0.5)
    for got, want in zip(batched['backbone.bn'], whole['backbone.bn']):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def _ranks_worker(rank, world_size, port, sizes, out_dir):
    import os
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.manual_seed(0)
    samples = torch.randn(8, 3, 6, 6) * 2 + 0.5
    model = _one_bn_model(2)  # same seed: the same weights on both ranks
    mine = samples[:sizes[0]] if rank == 0 else samples[sizes[0]:]
    mean, var = calibrate_bn(model, iter([dict(inputs=mine)]), 1, width=0.5)['backbone.bn']
    torch.save(dict(mean=mean, var=var), f'{out_dir}/rank{rank}.pth')
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason='no torch.distributed')
def test_two_ranks_with_unequal_shares_give_the_whole_set_statistics(tmp_path):
    import torch.multiprocessing as mp
    from .test_mutual_learning_ddp import _free_port
    mp.spawn(_ranks_worker, args=(2, _free_port(), [7, 1], str(tmp_path)), nprocs=2,
             join=True)
    torch.manual_seed(0)
    samples = torch.randn(8, 3, 6, 6) * 2 + 0.5
    model = _one_bn_model(2)
    want = calibrate_bn(model, iter([dict(inputs=samples)]), 1, width=0.5)['backbone.bn']
    for rank in range(2):
        got = torch.load(tmp_path / f'rank{rank}.pth')
        torch.testing.assert_close(got['mean'], want[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got['var'], want[1], rtol=1e-5, atol=1e-6)


def test_too_few_batches_and_bad_counts_are_refused():
    model = _TinyModel()
    with pytest.raises(ValueError, match='only 1'):
        calibrate_bn(model, iter([dict(inputs=torch.randn(2, 3, 4, 4))]), 2)
    with pytest.raises(ValueError, match='num_batches=0'):
        calibrate_bn(model, iter([]), 0)


def test_trained_subnets_come_from_the_checkpoints_record(trained):
    cfg, checkpoint, _ = trained
    subnets = trained_subnets(cfg, checkpoint=checkpoint)
    assert len(subnets) == 11 * 3 * 3  # widths 0.5..1.0 step 0.05 x 3 sizes x 3 frames
    assert subnets[0] == Subnet(0.5, 48, 4)
    assert trained_subnets(cfg) == subnets  # the config alone (no checkpoint) agrees


def _test_at(cfg, checkpoint, work_dir, **config):
    """`mim test` at a subnet: the checkpoint, a CalibratedSubnetHook; also
    returns the prediction scores of every test sample."""
    from mmengine.hooks import Hook
    scores = []

    class KeepScores(Hook):

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            scores.extend(o.pred_score.clone() for o in outputs)

    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks = [dict(type='CalibratedSubnetHook', **config)]
    cfg.load_from = checkpoint
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([KeepScores()])
    metrics = runner.test()
    return runner, metrics, torch.stack(scores)


def test_testing_a_calibrated_subnet_equals_calibrating_in_place(trained):
    from mutual_mm import set_model_width
    from mutual_mm.datasets.pipeline_views import set_pipeline_view
    from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
    from tools.calibrate_bn import main
    cfg, checkpoint, tmp = trained
    out = str(tmp / 'calibrated.pth')
    cfg_file = tmp / 'config.py'
    cfg.dump(str(cfg_file))
    main([str(cfg_file), checkpoint, '--out', out, '--widths', '1.0', '0.5',
          '--resolutions', '48', '32', '--frames', '4', '2', '--num-batches', '2'])
    calibrated = torch.load(out)
    assert sorted(calibrated['bn_calibration']) == sorted(
        Subnet(w, s, f).key for w in (1.0, 0.5) for s in (48, 32) for f in (4, 2))
    original = torch.load(checkpoint)  # trained weights and statistics untouched
    for key, value in original['state_dict'].items():
        assert torch.equal(calibrated['state_dict'][key], value), key

    runner, metrics, scores = _test_at(cfg, out, tmp / 't1', width=0.5, scale=32,
                                       frames=2)
    assert 'acc/top1' in metrics
    assert scores.shape == (4, 4)

    # in place: the trained checkpoint, calibrated right here, run on the test set
    here = Runner.from_cfg(copy.deepcopy(cfg))
    here.load_checkpoint(checkpoint)
    model = here.model
    calib = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=0)
    set_pipeline_view(calib.dataset, 32, 2)
    calibrate_bn(model, iter(calib), num_batches=2, width=0.5)
    set_model_width(model, 0.5)
    test = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    set_pipeline_view(test.dataset, 32, 2)
    model.eval()
    with torch.no_grad():
        here_scores = torch.stack([o.pred_score for batch in test
                                   for o in model.test_step(batch)])
    torch.testing.assert_close(scores, here_scores, rtol=1e-5, atol=1e-6)

    # and a different subnet really gives different predictions
    _, _, full_scores = _test_at(cfg, out, tmp / 't2', width=1.0, scale=48, frames=4)
    assert not torch.allclose(scores, full_scores)


def test_an_uncalibrated_subnet_is_refused(trained):
    cfg, checkpoint, tmp = trained
    with pytest.raises(KeyError, match=r'w0\.75_s40_f3.*calibrated: none'):
        _test_at(cfg, checkpoint, tmp / 'u', width=0.75, scale=40, frames=3)
    # the full network at the pipeline's own size needs no calibration
    _, metrics, _ = _test_at(cfg, checkpoint, tmp / "full")
    assert 'acc/top1' in metrics


@pytest.mark.parametrize('exact', [False, True])
def test_detector_calibration_runs_only_the_feature_extractor(tmp_path, monkeypatch, exact):
    """Mask R-CNN's BN layers are all in backbone + neck, so calibration skips the
    RoI heads: the statistics equal those of the whole tensor forward (in both
    modes: the exact one's passes and its depth-finding forward too)."""
    from mmengine.dataset import pseudo_collate

    from mutual_mm.engine import split_views
    from .helpers import det_train_cfg
    cfg = det_train_cfg(tmp_path / 'w', tmp_path / 'd')
    if exact:  # 17 BN depths, not 49: one pass each (stage 1 stays frozen: no grad)
        cfg.model.backbone.depth = 18
        cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.train_dataloader.dataset.pipeline[-1] = dict(
        type='MultiResolution', scales=[(160, 96)],
        transforms=[dict(type='Resize', keep_ratio=True), dict(type='PackDetInputs')])
    runner = Runner.from_cfg(cfg)
    model = runner.model
    dataset = runner.train_dataloader.dataset
    batches = split_views(pseudo_collate([dataset[0], dataset[1]]), 1)
    from mutual_mm.hosts import DetectorHost, host_of
    assert host_of(model).norms_only_in_features()
    calls = []
    model.roi_head.bbox_roi_extractor.register_forward_pre_hook(lambda *a: calls.append(1))
    fast = calibrate_bn(model, batches, 1, width=0.5, exact=exact)
    assert not calls  # the heads did not run
    monkeypatch.setattr(DetectorHost, 'norms_only_in_features', lambda self: False)
    full = calibrate_bn(model, batches, 1, width=0.5, exact=exact)
    assert calls and fast.keys() == full.keys() and fast
    for name, (mean, var) in full.items():
        assert torch.equal(fast[name][0], mean) and torch.equal(fast[name][1], var), name


# ------------------------------------------- every layer, whatever the batching
def _resnet18_classifier(**backbone):
    """A 2D host with 20 BN layers at 17 depths (SlimResNet-18, 16 base channels)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmengine')
    return MODELS.build(dict(
        type='MutualImageClassifier',
        backbone=dict(type='SlimResNet', depth=18, base_channels=16, stem_channels=16,
                      out_indices=(3, ), **backbone),
        head=dict(type='MutualLinearClsHead', num_classes=5, in_channels=128)))


def _video_demo_recognizer():
    """The video demo's SlowOnly R18 recognizer (3D, 20 BN layers)."""
    from mutual_mm.utils import build_model, load_config
    return build_model(load_config(osp.join(ROOT, 'configs/demo/'
                                            'slowonly_slim-r18_mutualnet_motion-demo.py')))


def _host_batches(dims: int, sizes):
    """Eight samples as the host's loader collates them, in batches of ``sizes``;
    each sample has its own brightness and contrast, as real clips do."""
    g = torch.Generator().manual_seed(0)
    shape = (3, 32, 32) if dims == 2 else (1, 3, 4, 32, 32)
    samples = []
    for _ in range(8):
        level, spread = torch.rand(2, generator=g) * torch.tensor([160., 90.])
        noise = torch.randn(shape, generator=g)
        samples.append((level + 40 + noise * (spread + 10)).clamp(0, 255).to(torch.uint8))
    batches, start = [], 0
    for size in sizes:
        batch = dict(inputs=samples[start:start + size])
        if dims == 3:  # mmaction's preprocessor wants them
            from mmaction.structures import ActionDataSample
            batch['data_samples'] = [ActionDataSample().set_gt_label(0)
                                     for _ in range(size)]
        batches.append(batch)
        start += size
    return batches


def _calibrated_both_ways(model, dims: int, exact: bool):
    whole = calibrate_bn(model, _host_batches(dims, [8]), 1, width=0.5, exact=exact)
    split = calibrate_bn(model, _host_batches(dims, [3, 3, 2]), 3, width=0.5, exact=exact)
    assert whole.keys() == split.keys() and len(whole) == 20
    return whole, split


MODELS_2D_3D = [pytest.param(_resnet18_classifier, 2, id='slim_resnet18_2d'),
                pytest.param(_video_demo_recognizer, 3, id='video_demo_3d')]


@pytest.mark.parametrize('build, dims', MODELS_2D_3D)
def test_exact_statistics_do_not_depend_on_how_the_set_is_batched(build, dims):
    """Every BN layer, however deep: batches [3, 3, 2] give the statistics of
    one batch of the same 8 samples (at a reduced width)."""
    torch.manual_seed(0)
    whole, split = _calibrated_both_ways(build(), dims, exact=True)
    for name, want in whole.items():
        for got, stat in zip(split[name], want):
            torch.testing.assert_close(got, stat, rtol=1e-4, atol=1e-5 * stat.abs().max().item(),
                                       msg=lambda m, name=name: f'{name}: {m}')


@pytest.mark.parametrize('build, dims', MODELS_2D_3D)
def test_one_pass_statistics_depend_on_batching_below_the_first_bn(build, dims):
    """The limitation of ``exact=False``: the first BN layer gets the whole set's
    statistics, deeper ones depend on how the set is batched (each batch was
    normalized with its own statistics above them)."""
    torch.manual_seed(0)
    whole, split = _calibrated_both_ways(build(), dims, exact=False)
    differences = relative_differences(split, whole)
    first = next(iter(whole))
    assert differences[first] < 1e-5
    assert max(differences.values()) > 1e-2, differences


def test_depths_group_parallel_layers():
    """A downsample's BN and its block's first BN read the same input: one depth,
    one pass; ResNet-18's 20 BN layers take 17 passes. Its in-place ReLUs after
    BN do not hide the BN outputs from the graph walk."""
    torch.manual_seed(0)
    model = _resnet18_classifier()
    data = model.data_preprocessor(_host_batches(2, [2])[0], False)
    buffers = {k: v.clone() for k, v in model.state_dict().items() if 'running_' in k}
    depths = bn_depths(model, data)
    assert len(depths) == 20 and len(set(depths.values())) == 17
    assert depths['backbone.bn1'] == 1  # the stem
    assert depths['backbone.layer1.0.bn1'] == 2
    assert depths['backbone.layer1.1.bn1'] == 4  # over the residual sum of block 0
    for stage in (2, 3, 4):
        assert depths[f'backbone.layer{stage}.0.downsample.1'] == \
            depths[f'backbone.layer{stage}.0.bn1']
    assert max(depths.values()) == depths['backbone.layer4.1.bn2'] == 17
    assert model.training  # modes, flags and statistics restored
    assert all(p.requires_grad for p in model.parameters())
    for key, value in buffers.items():
        assert torch.equal(model.state_dict()[key], value), key


class _TwoBNSlim(SlimBackboneMixin, nn.Module):
    """conv + BN + ReLU + conv + BN: the smallest model with a BN behind a BN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.make_slim()

    full_out_channels = (16, )

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return (self.bn2(self.conv2(x)), )


def _two_bn_model():
    model = _TinyModel()
    model.backbone = _TwoBNSlim()
    return model


def _ranks_worker_exact(rank, world_size, port, sizes, out_dir):
    import os
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.manual_seed(0)
    samples = torch.randn(8, 3, 6, 6) * 2 + 0.5
    model = _two_bn_model()  # same seed: the same weights on both ranks
    mine = samples[:sizes[0]] if rank == 0 else samples[sizes[0]:]
    stats = calibrate_bn(model, iter(_split(mine, [1] * len(mine))), len(mine), width=0.5,
                         exact=True)
    torch.save(stats, f'{out_dir}/rank{rank}.pth')
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason='no torch.distributed')
def test_exact_statistics_over_two_ranks_are_the_whole_set_statistics(tmp_path):
    """Each depth's statistics are summed over the ranks before the next pass
    uses them: two ranks with 7 and 1 samples, in batches of 1, give the
    statistics of one batch of all 8 in the layer behind a BN too."""
    import torch.multiprocessing as mp
    from .test_mutual_learning_ddp import _free_port
    mp.spawn(_ranks_worker_exact, args=(2, _free_port(), [7, 1], str(tmp_path)), nprocs=2,
             join=True)
    torch.manual_seed(0)
    samples = torch.randn(8, 3, 6, 6) * 2 + 0.5
    model = _two_bn_model()
    want = calibrate_bn(model, iter([dict(inputs=samples)]), 1, width=0.5, exact=True)
    one_pass = calibrate_bn(model, iter(_split(samples, [1] * 8)), 8, width=0.5,
                            exact=False)
    assert relative_differences(one_pass, want)['backbone.bn2'] > 1e-2
    for rank in range(2):
        got = torch.load(tmp_path / f'rank{rank}.pth')
        assert got.keys() == want.keys() == {'backbone.bn1', 'backbone.bn2'}
        for name, (mean, var) in want.items():
            torch.testing.assert_close(got[name][0], mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got[name][1], var, rtol=1e-5, atol=1e-6)


class _LoopSlim(_TinySlim):
    """One BN applied twice in a row: its second input is its own output."""

    def forward(self, x):
        return (self.bn(self.bn(self.conv(x))), )


def test_a_bn_layer_reading_its_own_output_is_refused_in_exact_mode():
    model = _TinyModel()
    model.backbone = _LoopSlim()
    batches = [dict(inputs=torch.randn(4, 3, 6, 6))]
    with pytest.raises(ValueError, match=r'backbone\.bn reads its own output.*exact=False'):
        calibrate_bn(model, iter(batches), 1, exact=True)
    assert calibrate_bn(model, iter(batches), 1, exact=False)  # one pass has a value


def test_inputs_autograd_did_not_record_are_refused_in_exact_mode():
    """Activation checkpointing runs its blocks without autograd: the BN layers
    there cannot be placed, so the exact mode says so instead of guessing."""
    model = _resnet18_classifier(with_cp=True)
    with pytest.raises(ValueError, match=r'outside autograd.*with_cp.*exact=False'):
        calibrate_bn(model, _host_batches(2, [2]), 1, exact=True)


def test_calibrate_bn_exact_as_a_new_process_is_independent_of_the_batch_size(trained):
    """`tools/calibrate_bn.py ... --exact` as the README's tools table runs it:
    the same 4 training clips in batches of 1 and of 2 give the same statistics
    in every layer; the one-pass default does not (in deeper layers)."""
    import subprocess
    import sys
    cfg, checkpoint, tmp = trained
    cfg_file = tmp / 'config_exact.py'
    cfg.dump(str(cfg_file))
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    stats = {}
    for exact in (True, False):
        for batch_size, num_batches in ((1, 4), (2, 2)):
            out = tmp / f'exact{exact}_bs{batch_size}.pth'
            cmd = [sys.executable, osp.join(root, 'tools/calibrate_bn.py'), str(cfg_file),
                   checkpoint, '--out', str(out), '--widths', '0.5', '--resolutions', '32',
                   '--frames', '2', '--num-batches', str(num_batches),
                   '--batch-size', str(batch_size)] + (['--exact'] if exact else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
            assert proc.returncode == 0, proc.stderr[-3000:]
            stats[exact, batch_size] = \
                torch.load(out)['bn_calibration'][Subnet(0.5, 32, 2).key]['stats']
    exact_diff = relative_differences(stats[True, 1], stats[True, 2])
    one_pass_diff = relative_differences(stats[False, 1], stats[False, 2])
    assert max(exact_diff.values()) < 1e-4, exact_diff
    assert max(one_pass_diff.values()) > 1e-2, one_pass_diff
