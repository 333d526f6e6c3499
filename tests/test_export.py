"""Static export of one subnet equals the dynamic model there."""
import copy

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mutual_mm  # noqa: F401


def _test_scores(cfg, **extra):
    scores = []

    class KeepScores(Hook):

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            scores.extend(o.pred_score.clone() for o in outputs)

    cfg = copy.deepcopy(cfg)
    cfg.update(extra)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([KeepScores()])
    runner.test()
    return runner, torch.stack(scores)


def test_exported_subnet_equals_the_calibrated_dynamic_model(calibrated_reduced, tmp_path):
    from tools.export_subnet import main as export
    cfg, cfg_file, calibrated = calibrated_reduced
    weights, config_path = export([cfg_file, calibrated, '--width', '0.5',
                                   '--resolution', '32', '--frames', '2',
                                   '--out-dir', str(tmp_path / 'subnet')])

    dynamic_cfg = copy.deepcopy(cfg)
    dynamic_cfg.custom_hooks = [dict(type='CalibratedSubnetHook', width=0.5, scale=32,
                                     frames=2)]
    _, dynamic = _test_scores(dynamic_cfg, load_from=calibrated,
                              work_dir=str(tmp_path / 'dyn'))
    static_cfg = Config.fromfile(config_path)
    runner, static = _test_scores(static_cfg, work_dir=str(tmp_path / 'static'))
    torch.testing.assert_close(static, dynamic, rtol=0, atol=1e-5)

    model = runner.model
    assert not any(isinstance(m, mutual_mm.ops.SlimMixin) for m in model.modules())
    assert model.backbone.conv1.conv.weight.shape[0] == 32  # active_channels(64, 0.5)
    assert model.cls_head.fc_cls.weight.shape[1] == 1024  # active_channels(2048, 0.5)
    # strict: the exported state dict is exactly the static model's
    state = torch.load(weights)['state_dict']
    assert list(state) == list(model.state_dict())
