"""Equivalence tests for the slimmable primitives in mutual_mm.ops.

Every slim layer is checked against a plain torch layer built by hand from
the sliced full weights: same output, and gradients that land in the sliced
region of the full weight (and nowhere else).
"""
import copy
import random

import pytest
import torch
from torch import nn

from mutual_mm.ops import (SlimBatchNorm2d, SlimBatchNorm3d, SlimConv2d, SlimConv3d,
                           SlimLinear, SlimMixin, WidthGrid, active_channels,
                           convert_to_slim, export_static, get_width, make_divisible,
                           set_width, width_context)

pytestmark = pytest.mark.core

ATOL = 1e-6
WIDTHS = (1.0, 0.5, 0.3)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomize(module):
    """Non-trivial parameters and running stats (BN defaults are 1/0)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.normal_()
            elif name.endswith('running_var'):
                b.uniform_(0.5, 2.0)
    return module


# ---------------------------------------------------------------------------
# 1. channel rule
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('full, width, expected', [
    (64, 0.25, 16), (64, 0.35, 24), (1280, 0.7, 896), (32, 1.0, 32), (3, 1.0, 3),
    (3, 0.5, 3), (64, 0.05, 8), (24, 0.5, 16), (48, 0.3, 16), (32, 0.3, 16),
])
def test_active_channels_reference(full, width, expected):
    assert active_channels(full, width) == expected


def test_make_divisible_rules():
    assert make_divisible(22.4) == 24
    assert make_divisible(3) == 8  # never below divisor
    assert make_divisible(3, min_value=4) == 4
    assert make_divisible(100, divisor=16) == 96
    for full in (16, 24, 32, 64, 96, 160, 320, 1280):
        for w in WidthGrid((0.25, 1.0), 0.05).widths:
            c = active_channels(full, w)
            assert c % 8 == 0 and 8 <= c <= full
            assert c >= 0.9 * full * w  # never more than 10 % below exact
    with pytest.raises(ValueError):
        active_channels(64, 0.0)


def test_coupled_layers_agree():
    # Two branches of a residual add / a depthwise conv and its producer.
    a = SlimConv2d(8, 96, 1)
    b = SlimConv2d(16, 96, 3, padding=1)
    dw = SlimConv2d(96, 96, 3, padding=1, groups=96)
    bn = SlimBatchNorm2d(96)
    for w in (0.25, 0.35, 0.5, 0.65, 0.85, 1.0):
        for m in (a, b, dw, bn):
            m.width = w
        ya = a(torch.randn(1, 8, 4, 4))
        yb = b(torch.randn(1, active_channels(16, w), 4, 4))
        assert ya.shape == yb.shape
        assert (ya + yb).shape[1] == active_channels(96, w)
        assert bn(dw(ya)).shape == ya.shape
        assert a.active_out_channels(8) == dw.active_out_channels(ya.shape[1])


# ---------------------------------------------------------------------------
# 2. width grid
# ---------------------------------------------------------------------------
def test_width_grid_values():
    g = WidthGrid((0.25, 1.0), 0.05)
    assert len(g.widths) == 16
    assert g.widths[0] == 0.25 and g.widths[-1] == 1.0
    assert g.min == 0.25 and g.max == 1.0
    assert list(g.widths) == sorted(g.widths)
    assert 0.3 in g.widths  # rounded, not 0.30000000000000004
    # hi is kept even when (hi - lo) is not a multiple of step
    assert WidthGrid((0.3, 0.9), 0.25).widths == (0.3, 0.55, 0.8, 0.9)
    assert WidthGrid((0.5, 0.5), 0.1).widths == (0.5,)


def test_width_grid_validate():
    g = WidthGrid((0.25, 1.0), 0.05)
    assert g.validate(0.6) == 0.6
    assert g.validate(0.1 + 0.2) == 0.3
    for bad in (0.33, 1.2, 0.1):
        with pytest.raises(ValueError) as e:
            g.validate(bad)
        msg = str(e.value)
        assert str(bad) in msg and '[0.25, 1.0]' in msg and '0.05' in msg


@pytest.mark.parametrize('rng, step', [
    ((0.0, 1.0), 0.05), ((-0.1, 1.0), 0.05), ((0.5, 1.2), 0.05), ((0.8, 0.5), 0.05),
    ((0.25, 1.0), 0.0), ((0.25, 1.0), -0.05), ((0.25,), 0.05),
])
def test_width_grid_bad_args(rng, step):
    with pytest.raises(ValueError):
        WidthGrid(rng, step)


def test_width_grid_sample_reproducible():
    g = WidthGrid((0.25, 1.0), 0.05)
    a = [g.sample(random.Random(7)) for _ in range(3)]
    r1, r2 = random.Random(123), random.Random(123)
    s1 = [g.sample(r1) for _ in range(200)]
    s2 = [g.sample(r2) for _ in range(200)]
    assert s1 == s2 and len(set(a)) == 1
    assert all(s in g.widths for s in s1)
    assert len(set(s1)) > 8  # actually spreads over the grid


# ---------------------------------------------------------------------------
# 3./4. layer equivalence with hand-built static layers
# ---------------------------------------------------------------------------
def _conv_case(dim, full_in, full_out, groups, depthwise=False):
    slim_cls, dense_cls = (SlimConv2d, nn.Conv2d) if dim == 2 else (SlimConv3d, nn.Conv3d)
    spatial = (6, 6) if dim == 2 else (3, 5, 5)

    def build():
        return slim_cls(full_in, full_out, 3, padding=1, stride=1, groups=groups)

    def static(layer, in_c):
        if depthwise:
            out_c, g = in_c, in_c
        else:
            out_c, g = active_channels(full_out, layer.width), groups
        s = dense_cls(in_c, out_c, 3, padding=1, groups=g)
        with torch.no_grad():
            s.weight.copy_(layer.weight[:out_c, :in_c // g])
            s.bias.copy_(layer.bias[:out_c])
        idx = {'weight': (slice(0, out_c), slice(0, in_c // g)),
               'bias': (slice(0, out_c),)}
        return s, idx

    return build, static, lambda c: torch.randn(2, c, *spatial), full_in


def _linear_case():
    def build():
        return SlimLinear(32, 40, slim_out=True)

    def static(layer, in_c):
        out_c = active_channels(40, layer.width)
        s = nn.Linear(in_c, out_c)
        with torch.no_grad():
            s.weight.copy_(layer.weight[:out_c, :in_c])
            s.bias.copy_(layer.bias[:out_c])
        return s, {'weight': (slice(0, out_c), slice(0, in_c)), 'bias': (slice(0, out_c),)}

    return build, static, lambda c: torch.randn(3, 2, c), 32


def _bn_case(dim, training, momentum=0.1):
    slim_cls, dense_cls = ((SlimBatchNorm2d, nn.BatchNorm2d) if dim == 2
                           else (SlimBatchNorm3d, nn.BatchNorm3d))
    spatial = (5, 5) if dim == 2 else (2, 4, 4)

    def build():
        return slim_cls(32, momentum=momentum).train(training)

    def static(layer, in_c):
        s = dense_cls(in_c, momentum=momentum).train(training)
        with torch.no_grad():
            for name in ('weight', 'bias', 'running_mean', 'running_var'):
                getattr(s, name).copy_(getattr(layer, name)[:in_c])
        return s, {'weight': (slice(0, in_c),), 'bias': (slice(0, in_c),)}

    return build, static, lambda c: torch.randn(4, c, *spatial) * 2 + 1, 32


CASES = {
    'conv2d': lambda: _conv_case(2, 32, 48, 1),
    'conv3d': lambda: _conv_case(3, 16, 24, 1),
    'depthwise2d': lambda: _conv_case(2, 32, 32, 32, depthwise=True),
    'grouped2d': lambda: _conv_case(2, 32, 48, 4),
    'linear': _linear_case,
    'bn2d_train': lambda: _bn_case(2, True),
    'bn2d_eval': lambda: _bn_case(2, False),
    'bn3d_train': lambda: _bn_case(3, True),
    'bn3d_eval': lambda: _bn_case(3, False),
}


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('case', list(CASES))
def test_slim_matches_static(case, width):
    build, make_static, make_input, full_in = CASES[case]()
    layer = _randomize(build())
    initial = {n: b.clone() for n, b in layer.named_buffers()}
    layer.width = width
    in_c = active_channels(full_in, width)  # what the previous slim layer emits
    static, idx = make_static(layer, in_c)
    x = make_input(in_c)

    y = layer(x)
    y_ref = static(x)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=1e-5)

    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    for name, sl in idx.items():
        full_grad = getattr(layer, name).grad
        torch.testing.assert_close(full_grad[sl], getattr(static, name).grad,
                                   atol=ATOL, rtol=1e-5)
        outside = torch.ones_like(full_grad, dtype=torch.bool)
        outside[sl] = False
        assert torch.count_nonzero(full_grad[outside]) == 0
        if width < 1.0:
            assert outside.any()

    if case.startswith('bn') and case.endswith('train'):
        # 4. running stats: sliced entries follow the static BN, others untouched
        torch.testing.assert_close(layer.running_mean[:in_c], static.running_mean,
                                   atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(layer.running_var[:in_c], static.running_var,
                                   atol=ATOL, rtol=1e-5)
        assert torch.equal(layer.running_mean[in_c:], initial['running_mean'][in_c:])
        assert torch.equal(layer.running_var[in_c:], initial['running_var'][in_c:])
        assert not torch.equal(layer.running_mean[:in_c], initial['running_mean'][:in_c])
        assert int(layer.num_batches_tracked) == 1


def test_bn_cumulative_average_two_batches():
    bn = SlimBatchNorm2d(32, momentum=None).train()
    static = nn.BatchNorm2d(16, momentum=None).train()
    bn.width = 0.5
    xs = [torch.randn(4, 16, 3, 3) * 3 + 2, torch.randn(4, 16, 3, 3) - 1]
    for x in xs:
        torch.testing.assert_close(bn(x), static(x), atol=ATOL, rtol=1e-5)
    mean = sum(x.mean(dim=(0, 2, 3)) for x in xs) / 2
    var = sum(x.var(dim=(0, 2, 3), unbiased=True) for x in xs) / 2
    torch.testing.assert_close(bn.running_mean[:16], mean)
    torch.testing.assert_close(bn.running_var[:16], var)
    torch.testing.assert_close(bn.running_mean[:16], static.running_mean)
    assert torch.equal(bn.running_mean[16:], torch.zeros(16))
    assert torch.equal(bn.running_var[16:], torch.ones(16))
    assert int(bn.num_batches_tracked) == 2


def test_bn_no_running_stats_and_no_affine():
    bn = SlimBatchNorm2d(32, affine=False, track_running_stats=False).eval()
    x = torch.randn(4, 16, 3, 3)
    torch.testing.assert_close(bn(x), nn.BatchNorm2d(16, affine=False,
                                                     track_running_stats=False)(x))


@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect'])
def test_depthwise_padding_mode_reduced_width(padding_mode):
    # Changed groups take a different code path than _conv_forward.
    layer = _randomize(SlimConv2d(32, 32, 3, padding=1, groups=32,
                                  padding_mode=padding_mode))
    static = nn.Conv2d(16, 16, 3, padding=1, groups=16, padding_mode=padding_mode)
    with torch.no_grad():
        static.weight.copy_(layer.weight[:16])
        static.bias.copy_(layer.bias[:16])
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(layer(x), static(x), atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(layer.to_static(16)(x), static(x), atol=ATOL, rtol=1e-5)


# ---------------------------------------------------------------------------
# 5. fixed input channels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('layer_type', ['conv', 'linear'])
def test_fixed_in_last(layer_type):
    f, slim_full = 4, 16
    if layer_type == 'conv':
        layer = SlimConv2d(slim_full + f, 16, 3, padding=1, fixed_in_channels=f)
        x = torch.randn(2, 8 + f, 5, 5)
    else:
        layer = SlimLinear(slim_full + f, 16, fixed_in_channels=f)
        x = torch.randn(2, 8 + f)
    _randomize(layer)
    W = layer.weight.detach()
    weight = torch.cat([W[:, :8], W[:, slim_full:]], dim=1)  # [slimmed | fixed]
    if layer_type == 'conv':
        ref = nn.functional.conv2d(x, weight, layer.bias, padding=1)
    else:
        ref = nn.functional.linear(x, weight, layer.bias)
    y = layer(x)
    torch.testing.assert_close(y, ref, atol=ATOL, rtol=1e-5)

    with torch.no_grad():
        layer.weight[:, 8:slim_full] += 10.0  # unused middle columns
    assert torch.equal(layer(x), y)
    with torch.no_grad():
        layer.weight[:, slim_full:] += 1.0  # the fixed (last) columns
    assert not torch.allclose(layer(x), y)
    # export keeps the layout
    torch.testing.assert_close(layer.to_static(8 + f)(x), layer(x))


def test_fixed_in_first():
    f = 4
    layer = _randomize(SlimConv2d(16 + f, 16, 1, fixed_in_channels=f,
                                  fixed_in_position='first'))
    x = torch.randn(2, f + 8, 3, 3)  # [fixed | slimmed]
    W = layer.weight.detach()
    weight = torch.cat([W[:, :f], W[:, f:f + 8]], dim=1)
    y = layer(x)
    torch.testing.assert_close(y, nn.functional.conv2d(x, weight, layer.bias), atol=ATOL,
                               rtol=1e-5)
    with torch.no_grad():
        layer.weight[:, f + 8:] += 10.0  # unused trailing columns
    assert torch.equal(layer(x), y)
    with torch.no_grad():
        layer.weight[:, :f] += 1.0  # the fixed (first) columns
    assert not torch.allclose(layer(x), y)
    with pytest.raises(ValueError, match='fixed'):
        layer(torch.randn(1, 2, 3, 3))  # fewer channels than the fixed part


# ---------------------------------------------------------------------------
# 6. from_dense
# ---------------------------------------------------------------------------
DENSE = {
    'conv2d': (lambda: nn.Conv2d(8, 16, 3, padding=1, padding_mode='reflect'),
               SlimConv2d, (2, 8, 5, 5)),
    'conv3d_nobias': (lambda: nn.Conv3d(8, 16, (1, 3, 3), bias=False), SlimConv3d,
                      (2, 8, 2, 5, 5)),
    'depthwise': (lambda: nn.Conv2d(8, 8, 3, groups=8), SlimConv2d, (2, 8, 5, 5)),
    'linear': (lambda: nn.Linear(8, 5), SlimLinear, (3, 8)),
    'bn2d': (lambda: nn.BatchNorm2d(8), SlimBatchNorm2d, (4, 8, 3, 3)),
    'bn3d': (lambda: nn.BatchNorm3d(8, momentum=None), SlimBatchNorm3d, (4, 8, 2, 3, 3)),
}


@pytest.mark.parametrize('name', list(DENSE))
def test_from_dense(name):
    make, slim_cls, shape = DENSE[name]
    dense = _randomize(make())
    if name == 'linear':
        dense.weight.requires_grad_(False)  # must survive the conversion
    reference = copy.deepcopy(dense)
    slim = slim_cls.from_dense(dense)
    assert isinstance(slim, type(dense)) and isinstance(slim, SlimMixin)
    sd, ref_sd = slim.state_dict(), reference.state_dict()
    assert list(sd) == list(ref_sd)
    for k in sd:
        assert torch.equal(sd[k], ref_sd[k]) and sd[k].dtype == ref_sd[k].dtype
    for (n, p), (_, q) in zip(slim.named_parameters(), dense.named_parameters()):
        assert p is q  # shared, so an existing optimizer keeps working
    if name == 'linear':
        assert not slim.weight.requires_grad
    assert all(t.device.type == 'cpu' for t in slim.state_dict().values())
    x = torch.randn(shape)
    for training in (True, False):
        slim.train(training)
        reference.train(training)
        assert torch.equal(slim(x), reference(x))
    if name.startswith('bn'):
        assert torch.equal(slim.running_mean, reference.running_mean)


# ---------------------------------------------------------------------------
# 7. convert / width helpers / export
# ---------------------------------------------------------------------------
def _small_net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.BatchNorm2d(32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def test_convert_to_slim():
    net = _randomize(_small_net())
    keys = copy.deepcopy(net.state_dict())
    out = convert_to_slim(net, skip=['7'])
    assert out is net
    assert type(net[0]) is SlimConv2d and type(net[1]) is SlimBatchNorm2d
    assert type(net[6]) is SlimConv2d and net[6].depthwise
    assert type(net[7]) is nn.BatchNorm2d  # skipped
    assert type(net[10]) is SlimLinear and net[10].slim_out is False
    assert net[0].slim_out is True
    assert list(net.state_dict()) == list(keys)
    # a second conversion is a no-op
    convert_to_slim(net)
    assert type(net[0]) is SlimConv2d
    with pytest.raises(ValueError, match='nope'):
        convert_to_slim(_small_net(), skip=['nope'])
    with pytest.raises(TypeError, match='GroupNorm'):
        convert_to_slim(nn.Sequential(nn.Conv2d(3, 8, 1), nn.GroupNorm(2, 8)), strict=True)
    assert isinstance(convert_to_slim(nn.Conv2d(3, 8, 1)), SlimConv2d)
    assert convert_to_slim(_small_net(), slim_out=False)[0].slim_out is False


def test_export_static_matches_dynamic():
    net = convert_to_slim(_randomize(_small_net()))
    set_width(net, 0.5)
    assert get_width(net) == 0.5
    net.train()
    x = torch.randn(2, 3, 8, 8)
    static = export_static(net, x)
    assert static.training and net.training  # modes restored / untouched
    assert not any(isinstance(m, SlimMixin) for m in static.modules())
    assert isinstance(net[0], SlimConv2d)  # original not modified
    assert static[0].weight.shape == (8, 3, 3, 3)
    assert static[1].num_features == 8
    assert static[3].weight.shape == (16, 8, 3, 3)
    assert static[6].weight.shape == (16, 1, 3, 3) and static[6].groups == 16
    assert static[7].running_mean.shape == (16,)
    assert static[10].weight.shape == (10, 16)
    assert static[0].weight.requires_grad
    net.eval()
    static.eval()
    with torch.no_grad():
        torch.testing.assert_close(static(x), net(x), atol=1e-5, rtol=1e-5)


def test_export_static_root_and_shared_layers():
    conv = SlimConv2d(8, 16, 1)
    conv.width = 0.5
    x = torch.randn(1, 8, 2, 2)
    static = export_static(conv, x)
    assert type(static) is nn.Conv2d and static.out_channels == 8
    shared = SlimConv2d(16, 16, 1)
    net = nn.Sequential(conv, shared, shared)  # shared layer, same input width
    set_width(net, 0.5)
    static = export_static(net, x)
    assert static[1] is static[2] and static[1].weight.shape == (8, 8, 1, 1)


class _TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = SlimConv2d(8, 16, 1)
        self.unused = SlimConv2d(16, 16, 1)  # e.g. an out_indices branch not run

    def forward(self, x):
        return self.used(x)


def test_export_static_leaves_unused_layers():
    net = _TwoBranch()
    set_width(net, 0.5)
    static = export_static(net, torch.randn(1, 8, 2, 2))
    assert type(static.used) is nn.Conv2d and type(static.unused) is SlimConv2d


def test_to_static_bn_copies_state():
    bn = _randomize(SlimBatchNorm2d(32, eps=1e-3, momentum=0.3)).eval()
    bn.num_batches_tracked.fill_(5)
    bn.weight.requires_grad_(False)
    s = bn.to_static(16)
    assert type(s) is nn.BatchNorm2d and s.num_features == 16 and not s.training
    assert s.eps == 1e-3 and s.momentum == 0.3 and int(s.num_batches_tracked) == 5
    assert torch.equal(s.running_var, bn.running_var[:16])
    assert s.running_var.data_ptr() != bn.running_var.data_ptr()  # a copy
    assert not s.weight.requires_grad and s.bias.requires_grad


def test_width_helpers():
    net = convert_to_slim(_small_net())
    assert get_width(net) == 1.0
    with width_context(net, 0.5):
        assert get_width(net) == 0.5
    assert get_width(net) == 1.0
    with pytest.raises(RuntimeError):
        with width_context(net, 0.25):
            raise RuntimeError('boom')
    assert get_width(net) == 1.0
    net[3].width = 0.5
    with pytest.raises(ValueError, match='different widths'):
        get_width(net)
    with pytest.raises(ValueError, match='Sequential'):
        get_width(_small_net())
    with pytest.raises(ValueError):
        set_width(net, 1.5)


# ---------------------------------------------------------------------------
# 8. errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('layer, x', [
    (SlimConv2d(16, 8, 1), torch.randn(1, 24, 2, 2)),
    (SlimConv3d(16, 8, 1), torch.randn(1, 24, 1, 2, 2)),
    (SlimLinear(16, 8), torch.randn(1, 24)),
    (SlimBatchNorm2d(16), torch.randn(2, 24, 2, 2)),
])
def test_too_many_input_channels(layer, x):
    with pytest.raises(ValueError, match=r'24.*16'):
        layer(x)


def test_grouped_conv_indivisible():
    conv = SlimConv2d(48, 48, 3, padding=1, groups=3)
    conv.width = 0.5  # 24 out channels: fine
    assert conv(torch.randn(1, 24, 4, 4)).shape[1] == 24
    conv.width = 0.35  # 16 out channels, not divisible by 3
    with pytest.raises(ValueError, match='groups=3'):
        conv(torch.randn(1, 24, 4, 4))
    conv.width = 1.0
    with pytest.raises(ValueError, match='groups=3'):
        conv(torch.randn(1, 16, 4, 4))  # 16 input channels
    with pytest.raises(ValueError):
        SlimConv2d(8, 8, 1, groups=2, fixed_in_channels=2)


def test_weight_prefix_gradient_equals_slicing():
    """The one-step backward of weight_prefix equals autograd's own slicing,
    also when two widths accumulate into one parameter (a MutualNet cohort)."""
    from mutual_mm.ops.base import weight_prefix
    w = torch.randn(16, 12, 3, 3, requires_grad=True)
    ref = w.detach().clone().requires_grad_(True)
    for rows, cols in ((8, 6), (12, 9), (16, 12)):
        g = torch.randn(rows, cols, 3, 3)
        out = weight_prefix(w, rows, cols)
        assert out.shape == (rows, cols, 3, 3) and torch.equal(out, w[:rows, :cols])
        (out * g).sum().backward()
        (ref[:rows][:, :cols] * g).sum().backward()
    assert torch.equal(w.grad, ref.grad)
    with torch.no_grad():  # no autograd node when nothing records it
        assert weight_prefix(w, 8, 6)._base is w
