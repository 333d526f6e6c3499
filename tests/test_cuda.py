"""What only a GPU can show, for video recognition (mmaction2's SlowOnly), run by
benchmarks/gpu_check.sh on a CUDA machine (`pytest -m cuda`); skipped cleanly where
torch sees no GPU or mmaction2 does not import (tests/test_cuda_core.py holds the
same checks for the core alone, and the slim layers'). The hooked step's gradient
is the sum of its members' (also under AMP fp16, where the loss scaler must see ONE
step per cohort), views made from the batch (frames too) and BN calibration agree
with the CPU."""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import calibrate_bn
from mutual_mm.engine import Member, MutualStep, split_views
from mutual_mm.hosts import BatchViews, host_of
from mutual_mm.ops import WidthGrid

from .helpers import needs, rec_train_cfg

pytestmark = [pytest.mark.cuda, needs('mmaction'),
              pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')]


@pytest.fixture(autouse=True)
def cudnn_benchmark():
    torch.backends.cudnn.benchmark = True
    yield
    torch.backends.cudnn.benchmark = False


def _runner(tmp_path, distill='kl'):
    runner = Runner.from_cfg(rec_train_cfg(tmp_path / 'w', tmp_path / 'd'))
    runner.model.cuda()
    step = MutualStep.of(runner.model, runner.train_dataloader.dataset,
                         WidthGrid((0.5, 1.0), 0.05), distill=distill)
    return runner, step


def _cohort_grads(model, data, cohort, wrapper, step):
    grads = {}

    def keep(opt, args, kwargs):
        grads.update({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
    wrapper.optimizer.register_step_pre_hook(keep)
    step.train_step(data, wrapper, cohort)
    return grads


def test_hooked_step_is_the_sum_of_members_on_cuda(tmp_path):
    """distill='gt': each member's loss is its own, so the cohort's gradient is
    the sum of single-member steps' gradients."""
    runner, step = _runner(tmp_path, distill='gt')
    model = runner.model
    data = pseudo_collate([runner.train_dataloader.dataset[i] for i in (0, 1)])
    cohort = [Member('full', 1.0, 0), Member('min', 0.5, 8), Member('rand0', 0.75, 4)]

    def grads(members):
        sgd = torch.optim.SGD(model.parameters(), lr=0.0)
        return _cohort_grads(model, data, members, OptimWrapper(sgd), step)

    both = grads(cohort)
    parts = [grads([m]) for m in cohort]
    for name, grad in both.items():
        total = sum(p[name] for p in parts if name in p)
        torch.testing.assert_close(grad, total, rtol=1e-4, atol=1e-6)


def test_amp_fp16_scaler_sees_one_step_per_cohort(tmp_path):
    runner, step = _runner(tmp_path)
    model = runner.model
    data = pseudo_collate([runner.train_dataloader.dataset[i] for i in (0, 1)])
    cohort = [Member('full', 1.0, 0), Member('min', 0.5, 8), Member('rand0', 0.75, 4)]

    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
                              dtype='float16', loss_scale='dynamic')
    wrapper.initialize_count_status(model, 0, 10)
    scale = wrapper.loss_scaler.get_scale()
    steps = []
    wrapper.optimizer.register_step_post_hook(lambda *a: steps.append(1))
    log_vars = step.train_step(data, wrapper, cohort)
    assert torch.isfinite(log_vars['loss'])
    assert len(steps) == 1  # one optimizer step for the cohort
    assert wrapper.loss_scaler.get_scale() == scale  # finite: no back-off
    assert wrapper.loss_scaler._growth_tracker == 1  # one scaler update, not three
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_batch_views_on_cuda_equal_the_cpu(tmp_path):
    runner, _ = _runner(tmp_path)
    model = runner.model
    data = split_views(pseudo_collate([runner.train_dataloader.dataset[i]
                                       for i in (0, 1)]), 9)[0]
    batch = model.data_preprocessor(data, True)
    views = BatchViews(host_of(model), [48, 40, 32], [4, 3, 2])
    cpu = dict(batch, inputs=batch['inputs'].cpu())
    for index in range(len(views.views)):
        torch.testing.assert_close(views.make(batch, index)['inputs'].cpu(),
                                   views.make(cpu, index)['inputs'], rtol=1e-5, atol=1e-5)


def test_bn_calibration_on_cuda_equals_the_cpu(tmp_path):
    runner, _ = _runner(tmp_path)
    model = runner.model
    data = split_views(pseudo_collate([runner.train_dataloader.dataset[i]
                                       for i in (0, 1)]), 9)[0]
    on_cuda = calibrate_bn(model, [data], 1, width=0.5)
    on_cpu = calibrate_bn(copy.deepcopy(model).cpu(), [data], 1, width=0.5)
    for name, (mean, var) in on_cpu.items():
        torch.testing.assert_close(on_cuda[name][0].cpu(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(on_cuda[name][1].cpu(), var, rtol=1e-4, atol=1e-5)
