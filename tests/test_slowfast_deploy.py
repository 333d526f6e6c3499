"""Deploying SlowFast subnets: the Slow input set in the backbone (never on
the clip, which the Fast pathway needs whole) for BN calibration, testing at a
subnet, the lookup table and static export."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import (Subnet, apply_subnet, build_lookup_table,
                              calibrate_bn, calibrate_checkpoint, trained_subnets)
from mutual_mm.deploy.calibrate_checkpoint import calibration_dataloader_cfg
from mutual_mm.engine.trained_space import META_KEY as TRAINED_META_KEY
from mutual_mm.engine.trained_space import TrainedSpace
from mutual_mm.models import SlimResNet3dSlowFast
from mutual_mm.ops import active_channels
from mutual_mm.utils import load_config

SLOWFAST_CFG = 'configs/kinetics/slowfast_slim-r50_mutualnet-4x16x1-256e_kinetics400-rgb.py'
SLOWFAST_8X8 = 'mmaction::recognition/slowfast/slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.py'


def _record_inputs(backbone):
    """Record the (T, H, W) each pathway's first conv reads."""
    seen = dict(slow=[], fast=[])
    for name, path in (('slow', backbone.slow_path), ('fast', backbone.fast_path)):
        path.conv1.conv.register_forward_hook(
            lambda m, a, o, name=name: seen[name].append(tuple(a[0].shape[2:])))
    return seen


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return SlimResNet3dSlowFast().eval()  # SlowFast-4x16: Slow = clip[::8]


def test_slow_input_equals_the_training_view(backbone):
    x = torch.randn(1, 3, 32, 48, 48)  # Slow: 4 frames of 48 x 48
    seen = _record_inputs(backbone)
    with torch.no_grad():
        for view in (4, 8):  # (178/224, 5/8) and (142/224, 3/8)
            backbone.set_width(0.63)
            backbone.set_input_view(view)
            by_view = backbone(x)
            size, frames = backbone.view_input(48, 4, *backbone.input_views[view])
            backbone.set_slow_input(size, frames)
            assert backbone.input_view == 0  # the setting replaces the view
            by_size = backbone(x)
            for a, b in zip(by_view, by_size):
                assert torch.equal(a, b)
        backbone.set_slow_input()  # the whole Slow input = view 0
        full = backbone(x)
        backbone.set_input_view(0)
        for a, b in zip(full, backbone(x)):
            assert torch.equal(a, b)
    assert seen['slow'] == [(2, 38, 38)] * 2 + [(2, 30, 30)] * 2 + [(4, 48, 48)] * 2
    assert set(seen['fast']) == {(32, 48, 48)}
    backbone.set_width(1.0)


def test_slow_input_precedence_non_square_and_bad_values(backbone):
    seen = _record_inputs(backbone)
    with torch.no_grad():
        backbone.set_slow_input(36, 2)
        backbone(torch.randn(1, 3, 16, 48, 64))  # short side 48 -> 36, long 64 -> 48
        backbone.set_slow_input(36)  # frames None: all Slow frames
        backbone(torch.randn(1, 3, 16, 64, 48))
        backbone.set_input_view(4)  # the training hook's call clears the setting
        assert backbone.slow_input is None
        backbone(torch.randn(1, 3, 16, 48, 48))
    assert seen['slow'] == [(2, 36, 48), (2, 48, 36), (1, 38, 38)]
    assert seen['fast'] == [(16, 48, 64), (16, 64, 48), (16, 48, 48)]
    for bad in ((0, None), ((224, 224), None), (None, 1.5)):
        with pytest.raises(ValueError, match='positive int'):
            backbone.set_slow_input(*bad)
    backbone.set_input_view(0)


def _pipeline_dataset():
    from mmaction.registry import TRANSFORMS
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    # whatever scope an earlier test left: a registry builds in the default scope's
    with DefaultScope.overwrite_default_scope('mmaction'):
        return SimpleNamespace(pipeline=Compose([
            TRANSFORMS.build(dict(type='SampleFrames', clip_len=8, frame_interval=2)),
            TRANSFORMS.build(dict(type='Resize', scale=(48, 48), keep_ratio=False))]))


def test_apply_config_sets_slowfast_in_the_backbone_slowonly_on_the_pipeline(backbone):
    from mutual_mm.models import SlimResNet3dSlowOnly
    dataset = _pipeline_dataset()
    sampler, resize = dataset.pipeline.transforms
    apply_subnet(backbone, dataset, Subnet(0.63, 30, 1))
    assert (sampler.clip_len, sampler.frame_interval, resize.scale) == (8, 2, (48, 48))
    assert backbone.slow_input == (30, 1) and backbone.width == 0.63
    apply_subnet(backbone, None, Subnet(1.0))
    assert backbone.slow_input is None and backbone.width == 1.0
    with pytest.raises(ValueError, match='short side'):
        apply_subnet(backbone, None, Subnet(1.0, (48, 32)))

    slowonly = SlimResNet3dSlowOnly()
    apply_subnet(slowonly, dataset, Subnet(0.5, 32, 4))
    assert (sampler.clip_len, sampler.frame_interval, resize.scale) == (4, 4, (32, 32))
    assert slowonly.width == 0.5


def test_trained_subnets_of_the_slowfast_config():
    cfg = load_config(SLOWFAST_CFG)
    configs = trained_subnets(cfg)
    widths = sorted({c.width for c in configs})
    assert widths[0] == 0.63 and widths[-1] == 1.0 and len(widths) == 9
    # 224 px (the train Resize) x {1, 178/224, 142/224}; Slow frames 32 // 8 = 4 x
    # the paper's {1, 0.63, 0.4} rounded as the backbone rounds: 4, 3 (2.52), 2 (1.6)
    assert sorted({(c.scale, c.frames) for c in configs}) == \
        sorted((s, f) for s in (224, 178, 142) for f in (4, 3, 2))
    assert len(configs) == 9 * 3 * 3
    assert configs[0] == Subnet(0.63, 224, 4)
    # given values win; the rest still comes from the backbone
    assert {(c.scale, c.frames) for c in trained_subnets(cfg, [1.0], scales=[160])} == \
        {(160, 4), (160, 3), (160, 2)}

    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[split].dataset.pipeline = [
            t for t in cfg[split].dataset.pipeline
            if t['type'] not in ('CenterCrop', 'ThreeCrop') and
            not (t['type'] == 'Resize' and t['scale'] != (-1, 256))]
        for t in cfg[split].dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = 1.5  # a factor: the output size is open
    with pytest.raises(ValueError, match='--resolutions'):
        trained_subnets(cfg)
    assert len(trained_subnets(cfg, [1.0], scales=[224])) == 3  # frames still known


# ------------------------------------------------ end to end on a tiny SlowFast
def _tiny_slowfast_cfg(work_dir, data_root):
    """SlowFast-8x8 (Slow = clip[::4]) with 1/4 of the channels, on 8-frame
    32 x 32 clips (Slow input 2 frames of 32 x 32), with a test split."""
    from .helpers import rec_train_cfg
    cfg = rec_train_cfg(work_dir, data_root, with_test=True)
    stock = load_config(SLOWFAST_8X8)
    cfg.model.backbone = stock.model.backbone
    cfg.model.backbone.type = 'SlimResNet3dSlowFast'
    cfg.model.backbone.slow_pathway.base_channels = 16
    cfg.model.backbone.fast_pathway.base_channels = 2
    cfg.model.cls_head = stock.model.cls_head
    cfg.model.cls_head.update(num_classes=4, dropout_ratio=0, in_channels=512 + 64)
    tail = [dict(type='Resize', scale=(32, 32), keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
        dict(type='DecordDecode')] + copy.deepcopy(tail)
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1,
             test_mode=True),
        dict(type='DecordDecode')] + copy.deepcopy(tail)
    return cfg


REDUCED = Subnet(0.63, 20, 1)
FULL = Subnet(1.0, 32, 2)


@pytest.fixture(scope='module')
def calibrated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('slowfast_deploy')
    cfg = _tiny_slowfast_cfg(tmp / 'work', tmp / 'data')
    torch.manual_seed(0)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    checkpoint = str(tmp / 'init.pth')
    # the record MutualLearningHook writes (the weights are untrained, but a
    # checkpoint without any record counts only width 1 as trained)
    record = TrainedSpace(width_range=[0.5, 1.0], width_step=0.05)
    torch.save(dict(state_dict=runner.model.state_dict(),
                    meta={TRAINED_META_KEY: record.as_meta()}), checkpoint)
    out = str(tmp / 'calibrated.pth')
    calibration = calibrate_checkpoint(cfg, checkpoint, out, [FULL, REDUCED],
                                       num_batches=1)
    return cfg, checkpoint, out, calibration, tmp


def _test_at(cfg, checkpoint, work_dir, **config):
    """`mim test` with a CalibratedSubnetHook: scores, pathway inputs, runner."""
    scores = []

    class KeepScores(Hook):

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            scores.extend(o.pred_score.clone() for o in outputs)

    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks = [dict(type='CalibratedSubnetHook', **config)] if config else []
    cfg.load_from = checkpoint
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([KeepScores()])
    seen = _record_inputs(runner.model.backbone)
    runner.test()
    return torch.stack(scores), seen, runner


@pytest.fixture(scope='module')
def dynamic(calibrated):
    cfg, _, out, _, tmp = calibrated
    return _test_at(cfg, out, tmp / 'dyn', width=REDUCED.width, scale=REDUCED.scale,
                    frames=REDUCED.frames)


def test_calibrated_subnet_runs_a_reduced_slow_and_the_whole_fast(calibrated,
                                                                         dynamic):
    from mutual_mm import set_model_width
    cfg, checkpoint, _, calibration, _ = calibrated
    assert sorted(calibration) == ['w0.63_s20_f1', 'w1_s32_f2']
    scores, seen, runner = dynamic
    assert scores.shape == (4, 4) and torch.isfinite(scores).all()
    assert set(seen['slow']) == {(1, 20, 20)}
    assert set(seen['fast']) == {(8, 32, 32)}  # the clip as the pipeline made it
    sampler, resize = [t for t in runner.test_dataloader.dataset.pipeline.transforms
                       if type(t).__name__ in ('SampleFrames', 'Resize')]
    assert (sampler.clip_len, sampler.frame_interval, resize.scale) == (8, 2, (32, 32))
    mean, _ = calibration[REDUCED.key]['stats']['backbone.slow_path.conv1.bn']
    assert mean.shape == (active_channels(16, 0.63), )

    # the same, done by hand: the Slow input set on the backbone, calibration in
    # place on the training clips through the test pipeline, then the test set
    here = Runner.from_cfg(copy.deepcopy(cfg))
    here.load_checkpoint(checkpoint)
    model = here.model
    model.backbone.set_slow_input(20, 1)
    calib = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=0)
    calibrate_bn(model, iter(calib), num_batches=1, width=0.63)
    set_model_width(model, 0.63)
    test = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    model.eval()
    with torch.no_grad():
        here_scores = torch.stack([o.pred_score for batch in test
                                   for o in model.test_step(batch)])
    torch.testing.assert_close(scores, here_scores, rtol=1e-5, atol=1e-6)

    full_scores, full_seen, _ = _test_at(cfg, calibrated[2], calibrated[4] / 'full',
                                         width=1.0, scale=32, frames=2)
    assert set(full_seen['slow']) == {(2, 32, 32)}
    assert not torch.allclose(scores, full_scores)


def test_an_uncalibrated_subnet_is_refused(calibrated):
    cfg, _, out, _, tmp = calibrated
    with pytest.raises(KeyError, match=r"w0\.8_s24_f1.*calibrated: "
                                       r"\['w0\.63_s20_f1', 'w1_s32_f2'\]"):
        _test_at(cfg, out, tmp / 'u', width=0.8, scale=24, frames=1)


def test_lookup_table_rows(calibrated):
    cfg, _, out, _, tmp = calibrated
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(tmp / 'lut')
    rows, metric = build_lookup_table(cfg, out, [FULL, REDUCED], num_batches=1)
    assert [r.subnet for r in rows] == [FULL, REDUCED]
    assert rows[0].flops > rows[1].flops > 0
    assert rows[0].params > rows[1].params  # the Slow pathway's width
    assert metric == 'acc/top1' and all(0 <= r.metric <= 1 for r in rows)


def test_exported_subnet_keeps_the_slow_input(calibrated, dynamic, tmp_path):
    from mutual_mm.deploy import export_subnet_files
    cfg, _, out, _, _ = calibrated
    weights, config_path, *_ = export_subnet_files(cfg, out, REDUCED, str(tmp_path / 'subnet'))
    static_cfg = Config.fromfile(config_path)
    assert list(static_cfg.model.model.backbone.slow_input) == [20, 1]
    pipeline = static_cfg.test_dataloader.dataset.pipeline  # the clip stays whole
    assert [(t.get('clip_len'), tuple(t.get('scale') or ())) for t in pipeline] == \
        [(t.get('clip_len'), tuple(t.get('scale') or ()))
         for t in cfg.test_dataloader.dataset.pipeline]
    static_cfg.work_dir = str(tmp_path / 'static')
    static, seen, runner = _test_at(static_cfg, weights, tmp_path / 'static')
    torch.testing.assert_close(static, dynamic[0], rtol=0, atol=1e-5)
    assert set(seen['slow']) == {(1, 20, 20)} and set(seen['fast']) == {(8, 32, 32)}
    model = runner.model
    assert not any(isinstance(m, mutual_mm.ops.SlimMixin) for m in model.modules())
    assert model.backbone.slow_path.conv1.conv.weight.shape[0] == active_channels(16, 0.63)


def test_reduced_slowfast_exports_to_onnx(calibrated, tmp_path):
    """The Slow input fixed by the subnet (downscaled in the graph), the Fast
    pathway whole: ONNX Runtime agrees with PyTorch."""
    from mutual_mm.deploy import export_subnet_files
    from mutual_mm.deploy.onnx_export import write_checked_onnx
    cfg, _, out, _, _ = calibrated
    exported = export_subnet_files(cfg, out, REDUCED, str(tmp_path / 'subnet'))
    result = write_checked_onnx(exported.static, exported.examples, str(tmp_path / 'subnet'))
    assert result['within_tolerance'] and result['outputs'] == 1
