"""What only a GPU can show, for the core alone (torch, mmengine, mmcv-lite: no
mmdet or mmaction2), run by benchmarks/gpu_check.sh on a bare GPU machine: slim
layers equal their static twins under cudnn, the hooked step's gradient is the sum
of its members' (also under AMP fp16, where the loss scaler must see ONE step per
cohort), views made from the batch and BN calibration agree with the CPU. On the
image-classifier family (configs/pretrain/mbv1_mutual_imagenet.py as written).

``MUTUAL_MM_CUDA_TESTS_DEVICE=cpu`` runs the same tests on the CPU (with AMP in
bfloat16), to check the tests themselves where no GPU is lent."""
import copy
import os

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import calibrate_bn
from mutual_mm.engine import Member, MutualStep, split_views
from mutual_mm.hosts import BatchViews, host_of
from mutual_mm.ops import SlimConv2d, SlimConv3d, WidthGrid, export_static, set_width

from .test_classifier import _hooked_mbv1_cfg

DEVICE = os.environ.get('MUTUAL_MM_CUDA_TESTS_DEVICE', 'cuda')
pytestmark = [pytest.mark.cuda, pytest.mark.core,
              pytest.mark.skipif(DEVICE == 'cuda' and not torch.cuda.is_available(),
                                 reason='no CUDA device')]
COHORT = [Member('full', 1.0, 0), Member('min', 0.25, 3), Member('rand0', 0.6, 1)]


@pytest.fixture(autouse=True)
def cudnn_benchmark():
    torch.backends.cudnn.benchmark = True
    yield
    torch.backends.cudnn.benchmark = False


@pytest.mark.parametrize('conv, shape', [(SlimConv2d, (2, 16, 20, 20)),
                                         (SlimConv3d, (2, 16, 4, 20, 20))])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_slim_conv_equals_its_static_twin(conv, shape, dtype):
    if DEVICE == 'cpu' and dtype == torch.float16:
        pytest.skip('float16 convolutions: CUDA only')
    torch.manual_seed(0)
    layer = conv(16, 32, 3, padding=1).to(DEVICE, dtype)
    set_width(layer, 0.5)
    x = torch.randn(shape, device=DEVICE, dtype=dtype)
    static = export_static(layer, x)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(layer(x), static(x), **tol)


def _classifier(tmp_path, distill='kl'):
    runner = Runner.from_cfg(_hooked_mbv1_cfg(tmp_path))
    model = runner.model.to(DEVICE)
    dataset = runner.train_dataloader.dataset
    step = MutualStep.of(model, dataset, WidthGrid((0.25, 1.0), 0.05), distill=distill)
    return model, step, pseudo_collate([dataset[0], dataset[2]])


def _step_grads(model, data, cohort, wrapper, step):
    grads = {}
    wrapper.optimizer.register_step_pre_hook(lambda *a: grads.update(
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    step.train_step(data, wrapper, cohort)
    return grads


def test_hooked_step_is_the_sum_of_its_members(tmp_path):
    """distill='gt': each member's loss is its own, so the cohort's gradient is the
    sum of single-member steps' gradients."""
    model, step, data = _classifier(tmp_path, distill='gt')

    def grads(members):
        sgd = torch.optim.SGD(model.parameters(), lr=0.0)
        return _step_grads(model, data, members, OptimWrapper(sgd), step)

    both = grads(COHORT)
    parts = [grads([m]) for m in COHORT]
    assert both.keys() == set().union(*parts)
    for name, grad in both.items():
        total = sum(p[name] for p in parts if name in p)
        torch.testing.assert_close(grad, total, rtol=1e-4, atol=1e-6, msg=name)


def test_amp_scaler_sees_one_step_per_cohort(tmp_path, monkeypatch):
    model, step, data = _classifier(tmp_path)
    if DEVICE == 'cpu':  # mmengine allows AmpOptimWrapper only with a GPU; bf16 on the CPU
        from mmengine.optim.optimizer import amp_optimizer_wrapper
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    dtype = 'float16' if DEVICE == 'cuda' else 'bfloat16'
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
                              dtype=dtype, loss_scale='dynamic')
    wrapper.initialize_count_status(model, 0, 10)
    scale = wrapper.loss_scaler.get_scale() if DEVICE == 'cuda' else None
    steps = []
    wrapper.optimizer.register_step_post_hook(lambda *a: steps.append(1))
    log_vars = step.train_step(data, wrapper, COHORT)
    assert torch.isfinite(log_vars['loss'])
    assert len(steps) == 1  # one optimizer step for the cohort
    if DEVICE == 'cuda':  # bfloat16 has no loss scaler
        assert wrapper.loss_scaler.get_scale() == scale  # finite: no back-off
        assert wrapper.loss_scaler._growth_tracker == 1  # one scaler update, not three
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_batch_views_equal_the_cpu(tmp_path):
    model, _, data = _classifier(tmp_path)
    batch = model.data_preprocessor(split_views(data, 4)[0], True)
    views = BatchViews(host_of(model), [224, 192, 160, 128], None)
    cpu = dict(batch, inputs=batch['inputs'].cpu())
    for index in range(len(views.views)):
        torch.testing.assert_close(views.make(batch, index)['inputs'].cpu(),
                                   views.make(cpu, index)['inputs'], rtol=1e-5, atol=1e-4)


def test_bn_calibration_equals_the_cpu(tmp_path):
    model, _, data = _classifier(tmp_path)
    data = split_views(data, 4)[1]
    on_device = calibrate_bn(model, [data], 1, width=0.5)
    on_cpu = calibrate_bn(copy.deepcopy(model).cpu(), [data], 1, width=0.5)
    assert on_cpu.keys() == on_device.keys()
    for name, (mean, var) in on_cpu.items():
        torch.testing.assert_close(on_device[name][0].cpu(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(on_device[name][1].cpu(), var, rtol=1e-4, atol=1e-5)
