"""Slim 3D backbones against mmaction2's stock ones."""
import pytest
import torch
from mmaction.models.backbones import X3D, ResNet3dSlowOnly
from mmengine.runner import load_checkpoint

import mutual_mm  # noqa: F401
from mutual_mm.models import SlimResNet3dSlowOnly, SlimX3D
from mutual_mm.ops import export_static

from .helpers import randomize_bn

SLOW = (ResNet3dSlowOnly, SlimResNet3dSlowOnly, dict(depth=50, pretrained=None,
                                                     lateral=False))
X3D_M = (X3D, SlimX3D, dict(gamma_w=1, gamma_b=2.25, gamma_d=2.2))


@pytest.mark.parametrize('stock_cls, slim_cls, kwargs', [SLOW, X3D_M])
@pytest.mark.parametrize('train', [False, True])
def test_full_width_equals_stock(stock_cls, slim_cls, kwargs, train):
    torch.manual_seed(0)
    stock = stock_cls(**kwargs)
    randomize_bn(stock)
    slim = slim_cls(**kwargs)
    slim.load_state_dict(stock.state_dict(), strict=True)
    stock.train(train)
    slim.train(train)
    x = torch.randn(2, 3, 6, 64, 64)
    assert (stock(x) - slim(x)).abs().max() <= 1e-5


@pytest.mark.parametrize('stock_cls, slim_cls, kwargs', [SLOW, X3D_M])
def test_stock_checkpoint_loads_strictly(tmp_path, stock_cls, slim_cls, kwargs):
    stock = stock_cls(**kwargs)
    path = tmp_path / 'stock.pth'
    torch.save({'state_dict': stock.state_dict()}, path)
    slim = slim_cls(**kwargs)
    assert list(slim.state_dict()) == list(stock.state_dict())
    load_checkpoint(slim, str(path), strict=True)


@pytest.mark.parametrize('stock_cls, slim_cls, kwargs', [SLOW, X3D_M])
@pytest.mark.parametrize('width, size, frames', [(0.63, 48, 3), (0.8, 56, 5), (1.0, 64, 8)])
def test_subnets_run_forward_backward_and_export(stock_cls, slim_cls, kwargs,
                                                        width, size, frames):
    torch.manual_seed(0)
    model = slim_cls(**kwargs)
    model.set_width(width)
    x = torch.randn(2, 3, frames, size, size)
    out = model(x)
    assert out.shape[:3] == (2, model.out_channels_at(width)[0], frames)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    static = export_static(model, x)
    with torch.no_grad():
        torch.testing.assert_close(static(x), model(x), rtol=1e-4, atol=1e-5)


def test_x3d_squeeze_excitation_is_slimmed_too():
    model = SlimX3D(gamma_w=1, gamma_b=2.25, gamma_d=2.2)
    model.set_width(0.63)
    seen = {}
    block = model.layer2[0]
    block.se_module.fc1.register_forward_hook(lambda m, a, o: seen.update(fc1=o.shape[1]))
    block.se_module.fc2.register_forward_hook(lambda m, a, o: seen.update(fc2=o.shape[1]))
    block.conv2.register_forward_hook(lambda m, a, o: seen.update(dw=o.shape[1]))
    model(torch.randn(1, 3, 4, 32, 32))
    assert seen['fc2'] == seen['dw'] < block.conv2.conv.out_channels
    assert seen['fc1'] == mutual_mm.ops.active_channels(block.se_module.fc1.out_channels, 0.63)
