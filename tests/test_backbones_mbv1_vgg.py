"""SlimMobileNetV1 and SlimVGG: registry, shapes at every width, gradients,
torchvision/mmcv compatibility of the VGG keys, static export, and the claim
that width 1.0 is the dense network."""
import pytest
import torch
from mmcv.cnn import VGG as MmcvVGG
from mmengine.registry import init_default_scope
from torch import nn

import mutual_mm  # noqa: F401
from mutual_mm.models import SlimMobileNetV1, SlimVGG
from mutual_mm.ops import SlimMixin, export_static

from .helpers import needs, randomize_bn

pytestmark = pytest.mark.core

BACKBONES = [SlimMobileNetV1, SlimVGG]
STRIDES = (4, 8, 16, 32)
FULL_CHANNELS = {SlimMobileNetV1: (128, 256, 512, 1024), SlimVGG: (128, 256, 512, 512)}

# torchvision's vgg16_bn `features` indices: conv, BN, ReLU per block, a pool per stage.
VGG16_BN_CONVS = {0: (3, 64), 3: (64, 64), 7: (64, 128), 10: (128, 128),
                  14: (128, 256), 17: (256, 256), 20: (256, 256),
                  24: (256, 512), 27: (512, 512), 30: (512, 512),
                  34: (512, 512), 37: (512, 512), 40: (512, 512)}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _input(size=64):
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def _dense_twin(cls, **kwargs):
    """The same network built from plain mmcv/torch layers: ``make_slim`` skipped."""
    dense_cls = type(f'Dense{cls.__name__}', (cls,), {'make_slim': lambda self: None})
    return dense_cls(**kwargs)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ registry
@needs('mmdet')
@needs('mmaction')
@pytest.mark.parametrize('scope', ['mmdet', 'mmaction'])
@pytest.mark.parametrize('cls', BACKBONES)
def test_built_by_plain_name_in_host_scopes(scope, cls):
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmaction.registry import MODELS
    model = MODELS.build(dict(type=cls.__name__))
    assert type(model) is cls
    assert model.full_out_channels == FULL_CHANNELS[cls]


# -------------------------------------------------------------------- shapes
@pytest.mark.parametrize('cls', BACKBONES)
def test_output_strides_and_channels_at_every_width(cls):
    model = cls().eval()
    x = _input()
    with torch.no_grad():
        outs = model(x)
    assert tuple(o.shape[1] for o in outs) == FULL_CHANNELS[cls]
    assert [tuple(o.shape[2:]) for o in outs] == [(64 // s, 64 // s) for s in STRIDES]
    assert model.out_channels_at(1.0) == FULL_CHANNELS[cls]
    for width in (0.75, 0.5, 0.25):
        model.set_width(width)
        assert model.width == width
        with torch.no_grad():
            slim_outs = model(x)
        expected = model.out_channels_at(width)
        assert tuple(o.shape[1] for o in slim_outs) == expected
        assert expected == tuple(int(c * width) for c in FULL_CHANNELS[cls])
        assert [o.shape[2:] for o in slim_outs] == [o.shape[2:] for o in outs]


def test_mobilenet_v1_widen_factor_and_out_indices():
    model = SlimMobileNetV1(widen_factor=0.5, out_indices=(0, 4))
    assert model.full_out_channels == (32, 512)
    assert model.stem.conv.out_channels == 16
    outs = model.eval()(_input())
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 32, 32), (512, 2, 2)]


def test_vgg_other_depths_and_out_indices():
    model = SlimVGG(depth=11, with_bn=False, out_indices=(0, 2))
    assert model.full_out_channels == (64, 256)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    outs = model(_input())
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 32, 32), (256, 8, 8)]


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize('width', [1.0, 0.5, 0.25])
@pytest.mark.parametrize('cls', BACKBONES)
def test_forward_backward(cls, width):
    model = cls().train()
    model.set_width(width)
    outs = model(_input())
    sum(o.mean() for o in outs).backward()
    # out_indices (1, 2, 3, 4) run every stage, so every parameter was used.
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # The layer producing the last output: rows of inactive channels get no grad.
    name = ('layer5.1.pointwise_conv.conv.weight' if cls is SlimMobileNetV1
            else 'features.40.weight')
    grad = model.get_parameter(name).grad
    active = model.out_channels_at(width)[-1]
    assert grad[:active].abs().sum() > 0
    if width < 1.0:
        assert active < grad.shape[0]
        assert torch.count_nonzero(grad[active:]) == 0
        # inputs of inactive channels too (the previous layer also slims)
        assert torch.count_nonzero(grad[:, active:]) == 0


# ------------------------------------------------------- VGG state-dict keys
def _torchvision_vgg16_bn_features():
    """A torchvision ``vgg16_bn`` state dict without ``classifier.*``, by hand."""
    g = torch.Generator().manual_seed(2)
    state = {}
    for idx, (cin, cout) in VGG16_BN_CONVS.items():
        state[f'features.{idx}.weight'] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f'features.{idx}.bias'] = torch.randn(cout, generator=g) * 0.1
        bn = f'features.{idx + 1}'
        state[f'{bn}.weight'] = torch.rand(cout, generator=g) + 0.5
        state[f'{bn}.bias'] = torch.randn(cout, generator=g) * 0.1
        state[f'{bn}.running_mean'] = torch.randn(cout, generator=g) * 0.1
        state[f'{bn}.running_var'] = torch.rand(cout, generator=g) + 0.5
        state[f'{bn}.num_batches_tracked'] = torch.tensor(7)
    return state


def test_vgg16_bn_keys_are_torchvisions_and_load_strictly():
    tv_state = _torchvision_vgg16_bn_features()
    model = SlimVGG()
    assert set(model.state_dict()) == set(tv_state)
    model.load_state_dict(tv_state, strict=True)
    for key, value in tv_state.items():
        assert torch.equal(model.state_dict()[key], value), key

    other = SlimVGG()
    other.load_state_dict(model.state_dict(), strict=True)
    model.eval(), other.eval()
    x = _input()
    with torch.no_grad():
        for a, b in zip(model(x), other(x)):
            assert torch.equal(a, b)


# --------------------------------------------------------------- static export
@pytest.mark.parametrize('cls', BACKBONES)
def test_export_static_at_half_width(cls):
    model = randomize_bn(cls()).eval()
    model.set_width(0.5)
    x = _input()
    with torch.no_grad():
        dynamic = model(x)
    static = export_static(model, x)
    assert not any(isinstance(m, SlimMixin) for m in static.modules())
    assert _n_params(static) < _n_params(model) / 2
    with torch.no_grad():
        exported = static(x)
    assert len(exported) == len(dynamic)
    for a, b in zip(dynamic, exported):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# -------------------------------------------------------- width 1.0 is dense
@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('cls', BACKBONES)
def test_full_width_is_the_dense_network(cls, train):
    model = randomize_bn(cls())
    dense = _dense_twin(cls)
    assert not any(isinstance(m, SlimMixin) for m in dense.modules())
    dense.load_state_dict(model.state_dict(), strict=True)
    model.train(train), dense.train(train)
    x = _input()
    with torch.no_grad():
        outs = model(x)
        dense_outs = dense(x)
    for a, b in zip(outs, dense_outs, strict=True):
        assert torch.equal(a, b)
    if train:  # running statistics were updated identically
        for key, value in dense.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
        return
    exported = export_static(model, x)  # plain torch layers, width 1.0
    assert not any(isinstance(m, SlimMixin) for m in exported.modules())
    assert _n_params(exported) == _n_params(model)
    with torch.no_grad():
        for a, b in zip(outs, exported(x), strict=True):
            assert torch.equal(a, b)


def test_full_width_vgg_equals_mmcv_vgg():
    model = randomize_bn(SlimVGG()).eval()
    stock = MmcvVGG(16, with_bn=True, out_indices=(1, 2, 3, 4), bn_eval=False)
    stock.load_state_dict(model.state_dict(), strict=True)
    stock.eval()
    x = _input()
    with torch.no_grad():
        for a, b in zip(model(x), stock(x), strict=True):
            assert torch.equal(a, b)


# ------------------------------------------------------ freezing / norm_eval
def _is_bn(m):
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def test_mobilenet_v1_frozen_stages():
    model = SlimMobileNetV1(frozen_stages=1).train()
    frozen = [model.stem, model.layer1]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in (model.layer2, model.layer5):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())


def test_vgg_frozen_stages():
    model = SlimVGG(frozen_stages=1).train()
    start, end = model.range_sub_modules[2]
    assert (start, end) == (14, 24)
    for i, layer in enumerate(model.features):
        assert all(p.requires_grad == (i >= start) for p in layer.parameters()), i
        assert layer.training == (i >= start), i


@pytest.mark.parametrize('norm_eval', [False, True])
@pytest.mark.parametrize('cls', BACKBONES)
def test_norm_eval(cls, norm_eval):
    model = cls(norm_eval=norm_eval).train()
    bns = [m for m in model.modules() if _is_bn(m)]
    assert bns
    assert all(m.training == (not norm_eval) for m in bns)
    assert all(m.training for m in model.modules() if not _is_bn(m))
    before = bns[-1].running_mean.clone()
    model(_input())
    assert torch.equal(bns[-1].running_mean, before) == norm_eval


# ----------------------------------------------------------- init and errors
@pytest.mark.parametrize('cls', BACKBONES)
def test_default_init_reaches_slim_layers(cls):
    """mmengine matches init layers by class name and direct bases: the slim
    BN/conv layers must still be found."""
    model = cls()
    with torch.no_grad():
        for m in model.modules():
            if _is_bn(m):
                m.weight.fill_(2.0)
            elif isinstance(m, nn.Conv2d):
                m.weight.zero_()
    model.init_weights()
    for m in model.modules():
        if _is_bn(m):
            assert torch.all(m.weight == 1)
        elif isinstance(m, nn.Conv2d):
            assert m.weight.abs().sum() > 0


def test_vgg_bad_depth():
    with pytest.raises(ValueError, match=r'depth 17.*\[11, 13, 16, 19\]'):
        SlimVGG(depth=17)


@pytest.mark.parametrize('cls, bad, valid', [
    (SlimVGG, 5, r'\[0, 1, 2, 3, 4\]'),
    (SlimVGG, -1, r'\[0, 1, 2, 3, 4\]'),
    (SlimMobileNetV1, 5, r'\[0, 1, 2, 3, 4\]'),
])
def test_bad_out_indices(cls, bad, valid):
    with pytest.raises(ValueError, match=rf'index {bad}\b.*{valid}'):
        cls(out_indices=(1, bad))


@pytest.mark.parametrize('cls, bad', [(SlimVGG, 5), (SlimMobileNetV1, 6)])
def test_bad_frozen_stages(cls, bad):
    with pytest.raises(ValueError, match=f'frozen_stages={bad}'):
        cls(frozen_stages=bad)
