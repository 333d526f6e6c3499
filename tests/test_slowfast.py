"""SlimResNet3dSlowFast and AdaptiveFusion: equivalence and exact correspondences."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmaction.models.backbones import ResNet3dSlowFast
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.models import AdaptiveFusion, SlimResNet3dSlowFast
from mutual_mm.utils import build_model, load_config

from .helpers import randomize_bn

SLOWFAST_8X8 = 'mmaction::recognition/slowfast/slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.py'


@pytest.mark.parametrize('train', [False, True])
def test_full_network_equals_stock_and_loads_strictly(tmp_path, train):
    torch.manual_seed(0)
    stock = ResNet3dSlowFast()
    randomize_bn(stock)
    path = tmp_path / 'stock.pth'
    torch.save({'state_dict': stock.state_dict()}, path)
    slim = SlimResNet3dSlowFast()
    from mmengine.runner import load_checkpoint
    load_checkpoint(slim, str(path), strict=True)
    stock.train(train)
    slim.train(train)
    x = torch.randn(1, 3, 32, 64, 64)
    for a, b in zip(stock(x), slim(x)):
        assert (a - b).abs().max() <= 1e-5


def test_fusion_resamples_fast_features_to_the_slow_ones():
    fusion = AdaptiveFusion()
    slow = torch.randn(2, 5, 3, 6, 6)
    fast = torch.randn(2, 4, 8, 10, 10)
    out = fusion(slow, fast)
    assert out.shape == (2, 9, 3, 6, 6)
    assert torch.equal(out[:, :5], slow)
    frames = fast[:, :, [1, 4, 6]]  # the time positions of 3 frames in 8
    expected = F.interpolate(frames.transpose(1, 2).reshape(6, 4, 10, 10), size=(6, 6),
                             mode='bilinear', align_corners=False)
    expected = expected.reshape(2, 3, 4, 6, 6).transpose(1, 2)
    torch.testing.assert_close(out[:, 5:], expected)
    same = torch.randn(2, 4, 3, 6, 6)
    assert torch.equal(fusion(slow, same), torch.cat([slow, same], 1))  # stock concat


def test_slow_conv_after_fusion_uses_first_slow_and_last_fast_columns():
    torch.manual_seed(0)
    model = SlimResNet3dSlowFast()
    model.eval()
    model.set_width(0.63)
    model.set_input_view(8)
    conv = model.slow_path.layer2[0].conv1.conv  # first conv after a fusion
    fast_c = model.slow_path.layer1_lateral.conv.out_channels  # 2 * beta * C = 64
    seen = {}
    conv.register_forward_hook(lambda m, a, o: seen.update(x=a[0], y=o))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 64, 64))
    x, y = seen['x'], seen['y']
    slow_c = x.shape[1] - fast_c
    assert slow_c == mutual_mm.ops.active_channels(256, 0.63) < 256
    w = conv.weight
    weight = torch.cat([w[:y.shape[1], :slow_c], w[:y.shape[1], -fast_c:]], 1)
    torch.testing.assert_close(y, F.conv3d(x, weight, None, conv.stride, conv.padding))
    # the columns between the active Slow ones and the Fast ones are never read
    with torch.no_grad():
        w[:, slow_c:w.shape[1] - fast_c] = 1e3
        y_again = conv(x)
        w[:, -1] += 1.0
        y_fast_changed = conv(x)
    assert torch.equal(y_again, y)
    assert not torch.allclose(y_fast_changed, y)


def _recognizer():
    cfg = load_config(SLOWFAST_8X8)
    cfg.model.backbone.type = 'SlimResNet3dSlowFast'
    torch.manual_seed(0)
    return build_model(cfg)


def test_head_classifier_reads_fast_columns_first():
    model = _recognizer().eval()
    mutual_mm.set_model_width(model, 0.63)
    fc = model.cls_head.fc_cls
    seen = {}
    fc.register_forward_hook(lambda m, a, o: seen.update(x=a[0], y=o))
    with torch.no_grad():
        model.extract_feat(torch.randn(1, 1, 3, 32, 64, 64), stage='head')
    x, y = seen['x'], seen['y']
    fast, slow = 256, mutual_mm.ops.active_channels(2048, 0.63)
    assert x.shape[1] == fast + slow
    torch.testing.assert_close(y, F.linear(x, fc.weight[:, :fast + slow], fc.bias))
    assert fc.fixed_in_channels == fast and fc.fixed_in_position == 'first'


@pytest.mark.parametrize('width, view, slow_shape', [
    (0.63, 8, (3, 142, 142)),  # (0.63, 142, 3)
    (0.8, 4, (5, 178, 178)),  # (0.8, 178, 5)
])
def test_forward_backward_at_paper_subnets(width, view, slow_shape):
    model = _recognizer().train()
    mutual_mm.set_model_width(model, width)
    model.backbone.set_input_view(view)
    seen = {}
    model.backbone.slow_path.conv1.conv.register_forward_hook(
        lambda m, a, o: seen.update(shape=tuple(a[0].shape[2:])))
    from mmaction.structures import ActionDataSample
    data = dict(inputs=[torch.randint(0, 255, (1, 3, 32, 224, 224), dtype=torch.uint8)],
                data_samples=[ActionDataSample().set_gt_label(3)])
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    losses['loss_cls'].backward()
    assert seen['shape'] == slow_shape
    assert torch.isfinite(losses['loss_cls'])
    assert model.backbone.fast_path.conv1.conv.weight.grad is not None
    assert model.backbone.slow_path.layer4[0].conv1.conv.weight.grad is not None


def test_hook_trains_slowfast_with_backbone_side_views(tmp_path):
    from .helpers import rec_train_cfg
    hook = dict(type='MutualLearningHook', width_range=(0.63, 1.0), num_random=2)
    cfg = rec_train_cfg(tmp_path / 'w', tmp_path / 'd', hook=hook, max_iters=2)
    stock = load_config(SLOWFAST_8X8)
    cfg.model.backbone = stock.model.backbone
    cfg.model.backbone.type = 'SlimResNet3dSlowFast'
    cfg.model.cls_head = stock.model.cls_head
    cfg.model.cls_head.num_classes = 4
    cfg.model.cls_head.dropout_ratio = 0
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[1] = dict(type='SampleFrames', clip_len=16, frame_interval=1, num_clips=1)
    tail = pipeline.pop()['transforms']
    tail[0]['scale'] = (48, 48)
    pipeline.extend(tail)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    scalars = runner.message_hub.log_scalars
    for member in ('full', 'min', 'rand0', 'rand1'):
        assert np.isfinite(scalars[f'train/{member}.loss' if member == 'full'
                                   else f'train/{member}.loss_kl'].current())
    assert scalars['train/full.res'].current() == 1.0
    assert runner.model.backbone.input_view == 0  # back to the full network
