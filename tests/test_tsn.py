"""TSN (mmaction2's Recognizer2D) end to end: the family that proves a new host
needs only its adapter and its backbone twin. The stock TSN config, made mutual
by the documented edits, trains on generated videos, calibrates, builds its
lookup table and exports; a view's frames are its segments."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

import mutual_mm
from mutual_mm.deploy import (Subnet, build_lookup_table, calibrate_checkpoint,
                              trained_subnets)
from mutual_mm.hosts import Recognizer2DHost, host_of
from mutual_mm.utils import load_config

from .helpers import on_small_data

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TSN_CFG = osp.join(ROOT, 'configs', 'kinetics',
                   'tsn_slim-r50_mutualnet-1x1x3-100e_kinetics400-rgb.py')
FULL, REDUCED = Subnet(1.0), Subnet(0.5, 34, 2)


@pytest.mark.parametrize('depth', [18, 50])
def test_slim_twin_is_the_stock_backbone_at_full_width(depth):
    from mmaction.models.backbones import ResNet
    init_default_scope('mmaction')
    torch.manual_seed(0)
    stock = ResNet(depth=depth, pretrained=None)
    stock.init_weights()
    slim = MODELS.build(dict(type='SlimActionResNet', depth=depth, pretrained=None))
    slim.load_state_dict(stock.state_dict(), strict=True)  # the stock keys
    stock.eval(), slim.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(stock(x), slim(x))
        slim.set_width(0.5)
        assert slim(x).shape[1] == slim.out_channels_at(0.5)[0] == stock.feat_dim // 2


def test_segment_views_take_segments_spread_over_the_video():
    """For segment sampling (clip_len 1) a view's frames are its segments."""
    init_default_scope('mmaction')
    transform = mutual_mm.datasets.MultiResolution(
        scales=[32, 24], frames=[3, 2],
        transforms=[dict(type='Resize', keep_ratio=False),
                    dict(type='FormatShape', input_format='NCHW'),
                    dict(type='PackActionInputs')])
    imgs = [np.full((40, 40, 3), i, np.uint8) for i in range(3)]
    out = transform(dict(imgs=imgs, clip_len=1, num_clips=3, frame_inds=np.array([5, 15, 25]),
                         label=0, img_shape=(40, 40), original_shape=(40, 40),
                         modality='RGB'))
    shapes = [tuple(x.shape) for x in out['inputs']]
    assert shapes == [(3, 3, 32, 32), (2, 3, 32, 32), (3, 3, 24, 24), (2, 3, 24, 24)]
    two = out['inputs'][1]
    assert [int(two[k, 0, 0, 0]) for k in range(2)] == [0, 2]  # first and last segment


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tsn')
    cfg = on_small_data(load_config(TSN_CFG), tmp / 'work', tmp / 'data', 'kinetics')
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    return cfg, str(tmp / 'work' / 'iter_2.pth'), tmp, runner


def test_tsn_is_a_recognizer_family(trained):
    _, _, _, runner = trained
    host = host_of(runner.model)
    assert type(host) is Recognizer2DHost and host.default_distill == "kl"
    assert host.consumer() is runner.model.cls_head
    scalars = runner.message_hub.log_scalars
    assert {'train/min.width', 'train/rand1.frames'} <= set(scalars)


def test_tsn_calibrates_tabulates_and_exports(trained, tmp_path):
    cfg, checkpoint, tmp, _ = trained
    subnets = trained_subnets(cfg)
    assert {s.frames for s in subnets} == {3, 2} and len({s.scale for s in subnets}) == 4
    out = str(tmp_path / 'calibrated.pth')
    calibrate_checkpoint(cfg, checkpoint, out, [FULL, REDUCED], num_batches=1)

    table_cfg = copy.deepcopy(cfg)
    table_cfg.work_dir = str(tmp_path / 'lut')
    rows, metric = build_lookup_table(table_cfg, out, [FULL, REDUCED], num_batches=1)
    assert metric == 'acc/top1' and [r.subnet for r in rows] == [FULL, REDUCED]
    assert rows[0].flops > rows[1].flops > 0 and rows[0].params > rows[1].params

    # the test at the reduced subnet, dynamic (the hook) and static (exported)
    from mutual_mm.deploy import export_subnet_files as export
    dynamic = _test_scores(cfg, out, tmp_path / 'dyn', subnet=REDUCED.as_dict())
    weights, config_path, *_ = export(cfg, out, REDUCED, str(tmp_path / 'subnet'))
    static_cfg = Config.fromfile(config_path)
    sampler = [t for t in static_cfg.test_dataloader.dataset.pipeline
               if t['type'] == 'SampleFrames'][0]
    assert sampler['num_clips'] == 2 and sampler['clip_len'] == 1  # segments
    static = _test_scores(static_cfg, weights, tmp_path / 'static')
    torch.testing.assert_close(static, dynamic, rtol=0, atol=1e-5)


def _test_scores(cfg, checkpoint, work_dir, subnet=None):
    scores = []

    class KeepScores(Hook):

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            scores.extend(o.pred_score.clone() for o in outputs)

    cfg = copy.deepcopy(cfg)
    if subnet is not None:  # by name, as on the command line: --cfg-options subnet.*
        cfg.merge_from_dict({f'subnet.{k}': v for k, v in subnet.items()})
    cfg.load_from = checkpoint
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner.register_custom_hooks([KeepScores()])
    runner.test()
    return torch.stack(scores)
