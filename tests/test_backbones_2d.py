"""SlimResNet / SlimMobileNetV2 against mmdet's stock backbones, and the
model-level subnet API on a stock Mask R-CNN config."""
import pytest
import torch
from mmdet.models.backbones import MobileNetV2, ResNet
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import mutual_mm  # noqa: F401
from mutual_mm import model_at_width, get_model_width, set_model_width
from mutual_mm.models import SlimMobileNetV2, SlimResNet
from mutual_mm.ops import WidthGrid, export_static
from mutual_mm.utils import build_model, load_config

from .helpers import det_packed_inputs, loss_of, randomize_bn

MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'


def _max_abs_diff(outs_a, outs_b):
    return max((a - b).abs().max().item() for a, b in zip(outs_a, outs_b))


@pytest.mark.parametrize('stock_cls, slim_cls, kwargs', [
    (ResNet, SlimResNet, dict(depth=50)),
    (ResNet, SlimResNet, dict(depth=18, out_indices=(1, 3))),
    (MobileNetV2, SlimMobileNetV2, dict()),
    (MobileNetV2, SlimMobileNetV2, dict(widen_factor=0.75, out_indices=(2, 4, 7))),
])
@pytest.mark.parametrize('train', [False, True])
def test_full_width_equals_stock(stock_cls, slim_cls, kwargs, train):
    torch.manual_seed(0)
    stock = stock_cls(**kwargs)
    randomize_bn(stock)
    slim = slim_cls(**kwargs)
    slim.load_state_dict(stock.state_dict(), strict=True)
    stock.train(train)
    slim.train(train)
    x = torch.randn(2, 3, 96, 64)
    assert _max_abs_diff(stock(x), slim(x)) <= 1e-5
    if train:  # running statistics were updated identically
        for (k, a), b in zip(stock.state_dict().items(), slim.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


@pytest.mark.parametrize('slim_cls, stock_cls, kwargs', [
    (SlimResNet, ResNet, dict(depth=50)),
    (SlimMobileNetV2, MobileNetV2, dict()),
])
def test_stock_checkpoint_loads_strictly(tmp_path, slim_cls, stock_cls, kwargs):
    torch.manual_seed(1)
    stock = stock_cls(**kwargs)
    randomize_bn(stock)
    path = tmp_path / 'stock.pth'
    torch.save({'state_dict': stock.state_dict()}, path)
    slim = slim_cls(**kwargs)
    assert list(slim.state_dict()) == list(stock.state_dict())
    load_checkpoint(slim, str(path), strict=True)
    # the init_cfg route a config uses (torchvision://resnet50 has the same keys)
    from_init = slim_cls(**kwargs, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    from_init.init_weights()
    for key, value in stock.state_dict().items():
        assert torch.equal(slim.state_dict()[key], value), key
        assert torch.equal(from_init.state_dict()[key], value), key


@pytest.mark.parametrize('slim_cls, kwargs', [
    (SlimResNet, dict(depth=50)),
    (SlimResNet, dict(depth=34)),
    (SlimResNet, dict(depth=101, out_indices=(3, ))),
    (SlimMobileNetV2, dict(out_indices=(1, 2, 4, 7))),
])
@pytest.mark.parametrize('width', [1.0, 0.75, 0.6, 0.35, 0.25])
def test_out_channels_at_matches_outputs(slim_cls, kwargs, width):
    model = slim_cls(**kwargs)
    model.eval()  # mmdet's train() overrides return None: no chaining
    model.set_width(width)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert tuple(o.shape[1] for o in outs) == model.out_channels_at(width)
    assert model.width == width


@pytest.mark.parametrize('slim_cls, kwargs', [
    (SlimResNet, dict(depth=50)),
    (SlimMobileNetV2, dict()),
])
def test_slim_backbone_equals_its_static_export(slim_cls, kwargs):
    torch.manual_seed(0)
    model = slim_cls(**kwargs)
    randomize_bn(model)
    model.eval()
    model.set_width(0.5)
    x = torch.randn(1, 3, 64, 64)
    static = export_static(model, x)
    with torch.no_grad():
        assert _max_abs_diff(model(x), static(x)) <= 1e-5
    assert sum(p.numel() for p in static.parameters()) < \
        0.4 * sum(p.numel() for p in model.parameters())


def test_backward_reaches_only_the_active_channels():
    model = SlimResNet(depth=18)
    model.set_width(0.5)
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    grad = model.layer4[1].conv2.weight.grad
    active = model.out_channels_at(0.5)[-1]
    assert grad[:active, :active].abs().sum() > 0
    assert grad[active:].abs().sum() == 0 and grad[:, active:].abs().sum() == 0


def _mask_rcnn(backbone_type):
    cfg = load_config(MASK_RCNN)
    cfg.model.backbone.type = backbone_type
    torch.manual_seed(0)
    return build_model(cfg)


def test_mask_rcnn_with_only_the_backbone_swapped():
    stock = _mask_rcnn('ResNet').train()
    slim = _mask_rcnn('SlimResNet').train()
    slim.load_state_dict(stock.state_dict(), strict=True)
    packed = det_packed_inputs()

    torch.manual_seed(3)  # the RPN/RoI samplers draw at random
    stock_losses, stock_total = loss_of(stock, packed)
    totals = {}
    for width in (1.0, 0.6, 0.25):
        set_model_width(slim, width)
        slim.zero_grad()
        torch.manual_seed(3)
        losses, total = loss_of(slim, packed)
        assert torch.isfinite(total), width
        total.backward()
        lateral = slim.neck.lateral_convs[-1].conv.weight.grad
        used = slim.backbone.out_channels_at(width)[-1]
        assert lateral[:, :used].abs().sum() > 0
        assert lateral[:, used:].abs().sum() == 0
        totals[width] = total.item()
    assert totals[1.0] == pytest.approx(stock_total.item(), abs=1e-5)
    assert len(set(totals.values())) == 3


def test_subnet_api_and_its_errors():
    model = _mask_rcnn('SlimResNet')
    assert get_model_width(model) == 1.0
    with model_at_width(model, 0.5):
        assert get_model_width(model) == 0.5
    assert get_model_width(model) == 1.0
    with pytest.raises(RuntimeError):
        with model_at_width(model, 0.7):
            raise RuntimeError
    assert get_model_width(model) == 1.0

    grid = WidthGrid((0.25, 1.0), step=0.05)
    with pytest.raises(ValueError, match=r'0\.33.*0\.25.*1\.0'):
        set_model_width(model, 0.33, grid=grid)
    with pytest.raises(ValueError, match=r'1\.2'):
        set_model_width(model, 1.2)
    with pytest.raises(ValueError, match='got 0'):
        set_model_width(model, 0)
    assert get_model_width(model) == 1.0

    with pytest.raises(TypeError, match='MaskRCNN has ResNet where a slimmable'):
        set_model_width(_mask_rcnn('ResNet'), 0.5)


def test_unsupported_backbone_options_are_refused():
    with pytest.raises(ValueError, match='dcn'):
        SlimResNet(depth=50, dcn=dict(type='DCNv2', deform_groups=1),
                   stage_with_dcn=(False, True, True, True))
    with pytest.raises(TypeError, match='GroupNorm'):
        SlimResNet(depth=50, norm_cfg=dict(type='GN', num_groups=32))


@pytest.mark.parametrize('scope', ['mmdet', 'mmaction'])
def test_backbones_build_by_plain_name(scope):
    init_default_scope(scope)
    from mmengine.registry import MODELS
    assert isinstance(MODELS.build(dict(type='SlimResNet', depth=18)), SlimResNet)
    assert isinstance(MODELS.build(dict(type='SlimMobileNetV2')), SlimMobileNetV2)
