"""MultiResolution + MutualLearningHook with real mmengine Runners."""
import copy

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.engine import MutualLearningHook

from .helpers import DET_SCALES, det_train_cfg


def _runner(cfg):
    return Runner.from_cfg(copy.deepcopy(cfg))


def test_mask_rcnn_trains_with_the_hook_and_logs_every_member(tmp_path):
    hook = dict(type='MutualLearningHook', width_range=(0.25, 1.0), num_random=2)
    runner = _runner(det_train_cfg(tmp_path / 'work', tmp_path / 'data', hook=hook))
    runner.train()
    scalars = runner.message_hub.log_scalars
    for member in ('full', 'min', 'rand0', 'rand1'):
        loss = scalars[f'train/{member}.loss'].current()
        assert np.isfinite(loss), member
        assert f'train/{member}.loss_mask' in scalars
    assert scalars['train/min.width'].current() == 0.25
    assert scalars['train/full.width'].current() == 1.0
    assert scalars['train/full.res'].current() == DET_SCALES[0][1]
    assert scalars['train/rand0.res'].current() in [s[1] for s in DET_SCALES]
    assert runner.iter == 2
    # the stock train step is back, the model is at full width
    assert 'train_step' not in runner.model.__dict__
    assert mutual_mm.get_model_width(runner.model) == 1.0


def test_slowonly_recognizer_trains_with_kl_and_video_views(tmp_path):
    from .helpers import rec_train_cfg
    hook = dict(type='MutualLearningHook', width_range=(0.63, 1.0), num_random=2)
    runner = _runner(rec_train_cfg(tmp_path / 'work', tmp_path / 'data', hook=hook))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/full.loss_cls'].current())
    for member in ('min', 'rand0', 'rand1'):
        assert np.isfinite(scalars[f'train/{member}.loss_kl'].current())
        assert f'train/{member}.loss_cls' not in scalars  # KL replaces the CE
    assert scalars['train/min.width'].current() == pytest.approx(0.63)
    hook_obj = [h for h in runner.hooks if isinstance(h, MutualLearningHook)][0]
    assert hook_obj.resolved_distill == 'kl'
    assert hook_obj.num_views == 9  # 3 sizes x 3 frame counts
    assert scalars['train/full.frames'].current() == 4
    assert scalars['train/full.res'].current() == 48


# ------------------------------------------------------------- equivalences
def test_single_member_hooked_step_equals_the_stock_step(tmp_path):
    """num_random=0, one resolution, width range [1, 1]: the cohort is the full
    network alone, so one hooked step must produce the stock step's weights."""
    scale = DET_SCALES[0]
    hook = dict(type='MutualLearningHook', width_range=(1.0, 1.0), num_random=0)
    hooked = _runner(det_train_cfg(tmp_path / 'a', tmp_path / 'data', scales=[scale],
                                   hook=hook, max_iters=1))
    start = {k: v.clone() for k, v in hooked.model.state_dict().items()}
    hooked.train()  # before the next Runner: init_weights draws from the seeded RNG
    stock_cfg = det_train_cfg(tmp_path / 'b', tmp_path / 'data', max_iters=1)
    stock_cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='PackDetInputs'),
    ]
    stock = _runner(stock_cfg)
    for key, value in stock.model.state_dict().items():
        assert torch.equal(start[key], value), key  # same start
    stock.train()
    changed = 0
    for key, value in stock.model.state_dict().items():
        torch.testing.assert_close(hooked.model.state_dict()[key], value, rtol=0,
                                   atol=0, msg=key)
        changed += not torch.equal(start[key], value)
    assert changed > 100  # the step did train


def _grads_of_one_step(model, step):
    """Gradients seen by the optimizer at its (single) step."""
    from mmengine.optim import OptimWrapper
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    grads = {}

    def keep(opt, args, kwargs):
        for name, p in model.named_parameters():
            if p.grad is not None:
                grads[name] = p.grad.clone()

    optimizer.register_step_pre_hook(keep)
    step(OptimWrapper(optimizer))
    return grads


@pytest.mark.parametrize('distill', ['kl', 'gt'])
def test_hooked_gradient_is_the_sum_of_member_gradients(tmp_path, distill):
    from mmengine.dataset import pseudo_collate

    from mutual_mm.engine import Member, MutualStep, kl_to_teacher, split_views
    from mutual_mm.ops import WidthGrid
    from .helpers import rec_train_cfg
    runner = _runner(rec_train_cfg(tmp_path / 'w', tmp_path / 'd'))
    model = runner.model
    dataset = runner.train_dataloader.dataset
    step = MutualStep.of(model, dataset, WidthGrid((0.5, 1.0), 0.05), distill=distill)
    data = pseudo_collate([dataset[0], dataset[1]])
    cohort = [Member('full', 1.0, 0), Member('min', 0.5, 8), Member('rand0', 0.75, 4)]

    hooked = _grads_of_one_step(model, lambda ow: step.train_step(data, ow, cohort))

    views = split_views(data, 9)
    separate = {}
    teacher = None
    for member in cohort:
        model.zero_grad()
        model.backbone.set_width(member.width)
        batch = model.data_preprocessor(views[member.view], True)
        feats, _ = model.extract_feat(batch['inputs'], test_mode=False)
        logits = model.cls_head(feats)
        if member.name == 'full' or distill == 'gt':
            loss = model.cls_head.loss_by_feat(logits, batch['data_samples'])['loss_cls']
        else:
            loss = kl_to_teacher(logits, teacher)
        if member.name == 'full':
            teacher = logits.detach()
        loss.backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                separate[name] = separate.get(name, 0) + p.grad.clone()
    assert hooked.keys() == separate.keys()
    for name, grad in separate.items():
        torch.testing.assert_close(hooked[name], grad, rtol=1e-4, atol=1e-6, msg=name)


# ------------------------------------------------------------------ resume
class _Interrupted(Exception):
    pass


def _recording_hooks(record, interrupt_at=None):
    from mmengine.hooks import Hook

    class Record(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            record.append({k: round(float(v), 6) for k, v in outputs.items()})
            if runner.iter + 1 == interrupt_at:  # after CheckpointHook saved
                raise _Interrupted

    return [Record()]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    from .helpers import rec_train_cfg
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2)

    def cfg(work):
        c = rec_train_cfg(work, tmp_path / 'data', hook=hook, max_iters=4,
                          checkpoint_interval=2)
        # a deterministic pipeline: what differs between runs is then only what
        # resume must restore (weights, optimizer, data position, cohort sampler)
        c.train_dataloader.dataset.pipeline[1]['test_mode'] = True
        return c

    straight_log = []
    straight = _runner(cfg(tmp_path / 'straight'))
    straight.register_custom_hooks(_recording_hooks(straight_log))
    straight.train()

    first_log = []
    first = _runner(cfg(tmp_path / 'resumed'))
    first.register_custom_hooks(_recording_hooks(first_log, interrupt_at=2))
    with pytest.raises(_Interrupted):
        first.train()
    resumed_log = []
    resumed_cfg = cfg(tmp_path / 'resumed')
    resumed_cfg.resume = True
    resumed = _runner(resumed_cfg)
    resumed.register_custom_hooks(_recording_hooks(resumed_log))
    resumed.train()

    assert first_log + resumed_log == straight_log
    assert len(straight_log) == 4
    widths = {log['rand0.width'] for log in straight_log}
    assert len(widths) > 1  # the sampler did draw different subnets


# ------------------------------------------------------------------- errors
def test_refusals_at_before_train(tmp_path):
    from .helpers import rec_train_cfg
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0))
    stock = rec_train_cfg(tmp_path / 'a', tmp_path / 'd', hook=hook)
    stock.model.backbone.type = 'ResNet3dSlowOnly'
    with pytest.raises(TypeError, match='cannot slim this model.*ResNet3dSlowOnly'):
        _runner(stock).train()

    no_views = rec_train_cfg(tmp_path / 'b', tmp_path / 'd', hook=hook)
    pipeline = no_views.train_dataloader.dataset.pipeline
    pipeline[-1:] = pipeline[-1]['transforms']
    pipeline[-3]['scale'] = (32, 32)
    with pytest.raises(ValueError, match='no MultiResolution'):
        _runner(no_views).train()


@pytest.mark.parametrize('kwargs, match', [
    (dict(width_range=(0.2, 1.2)), r'hi=1\.2'),
    (dict(width_range=(0.0, 1.0)), r'lo=0\.0'),
    (dict(width_range=(0.5, 1.0), width_step=0), 'step must be a positive'),
    (dict(num_random=-1), 'num_random=-1'),
    (dict(distill='mse'), "distill='mse'.*'auto', 'kl', 'gt'"),
])
def test_bad_hook_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MutualLearningHook(**kwargs)


def test_kl_needs_a_classification_head(tmp_path):
    hook = dict(type='MutualLearningHook', distill='kl')
    with pytest.raises(ValueError, match='needs a classification head.*MaskRCNN'):
        _runner(det_train_cfg(tmp_path / 'w', tmp_path / 'd', hook=hook)).train()


@pytest.mark.parametrize('kwargs, match', [
    (dict(scales=[]), 'scales is empty'),
    (dict(scales=[64, 0]), 'non-positive'),
    (dict(scales=[64, 80]), 'scale 80 is above'),
    (dict(scales=[(100, 60), (120, 40)]), r'\(120, 40\) is above'),
    (dict(scales=[64], frames=[]), 'frames is empty'),
    (dict(scales=[64], frames=[4, 6]), 'frame count 6'),
    (dict(scales=[64], transforms=[dict(type='PackActionInputs')]), 'no Resize'),
    (dict(scales=[64], transforms=[dict(type='Resize', scale=(9, 9))]), 'own scale'),
])
def test_bad_multi_resolution_arguments(kwargs, match):
    from mutual_mm.datasets import MultiResolution
    args = dict(transforms=[dict(type='Resize', keep_ratio=False)])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MultiResolution(**args)


# ------------------------------------------ optim wrapper features
def test_accumulation_and_clipping_step_once_per_cohort(tmp_path):
    """accumulative_counts=2: the optimizer steps after every 2nd iteration (not
    after every 2nd member); clipping applies to the accumulated gradient."""
    from mmengine.hooks import Hook

    from .helpers import rec_train_cfg
    seen = []

    class Watch(Hook):
        priority = 'LOWEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.before = runner.model.cls_head.fc_cls.weight.detach().clone()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            fc = runner.model.cls_head.fc_cls
            seen.append((not torch.equal(self.before, fc.weight), fc.weight.grad is not None,
                         runner.optim_wrapper._inner_count))

    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2)
    cfg = rec_train_cfg(tmp_path / 'w', tmp_path / 'd', hook=hook, max_iters=4)
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1),
                             accumulative_counts=2, clip_grad=dict(max_norm=1.0))
    runner = _runner(cfg)
    runner.register_custom_hooks([Watch()])
    runner.train()
    # (weights changed, gradient kept, iterations counted) after each iteration
    assert seen == [(False, True, 1), (True, False, 2), (False, True, 3), (True, False, 4)]
    assert 'train/grad_norm' in runner.message_hub.log_scalars


def test_only_the_full_network_updates_bn_running_statistics(tmp_path):
    """After a hooked iteration the BN running statistics are those the full
    network alone would produce: sub-networks' batch statistics (other channel
    counts, other resolutions) do not leak into them."""
    from mmengine.dataset import pseudo_collate

    from mutual_mm.engine import split_views
    from .helpers import rec_train_cfg
    hook = dict(type='MutualLearningHook', width_range=(0.5, 1.0), num_random=2)
    runner = _runner(rec_train_cfg(tmp_path / 'w', tmp_path / 'd', hook=hook))
    model = runner.model
    hook = [h for h in runner.hooks if isinstance(h, MutualLearningHook)][0]
    hook.before_train(runner)
    data = pseudo_collate([runner.train_dataloader.dataset[i] for i in range(2)])
    initial = copy.deepcopy(model.state_dict())
    model.train()
    optim_wrapper = runner.build_optim_wrapper(dict(
        optimizer=dict(type='SGD', lr=0.0)))
    model.train_step(data, optim_wrapper)
    hooked = {k: v.clone() for k, v in model.state_dict().items() if 'running_' in k}

    model.load_state_dict(initial)
    hook.after_train(runner)  # the stock step, every BN tracking again
    batch = model.data_preprocessor(split_views(data, 9)[0], True)
    model(**batch, mode='loss')  # the full network's forward on the full view
    alone = {k: v for k, v in model.state_dict().items() if 'running_' in k}
    assert hooked.keys() == alone.keys() and hooked
    for key, value in alone.items():
        torch.testing.assert_close(hooked[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert any(not torch.equal(initial[k], v) for k, v in alone.items())
    from mutual_mm.models.slimming import batch_norms
    assert all(norm.track_running_stats for _, norm in batch_norms(model))
