"""What a user meets when training goes wrong: errors that say what happened and
keep the work done so far (issue: failure modes)."""
import glob
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.engine import MutualLearningHook, NonFiniteLossError
from mutual_mm.utils import load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
VIDEO_DEMO = osp.join(ROOT, 'configs', 'demo', 'slowonly_slim-r18_mutualnet_motion-demo.py')


def demo_video_cfg(tmp_path, **overrides):
    """The demo video config on 8 generated clips, run from ``tmp_path``."""
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from make_demo_data import make_demo_data
    os.chdir(tmp_path)  # the demo config's data paths are relative
    make_demo_data(osp.join('data', 'mutual_demo'), images=(1, 1), videos=(8, 4))
    cfg = load_config(VIDEO_DEMO)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'WARNING'
    cfg.train_dataloader.batch_size = 4
    cfg.merge_from_dict(overrides)
    return cfg


def test_a_diverging_run_stops_at_the_first_non_finite_loss(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # SGD: its step grows with the gradient, so the loss itself blows up (AdamW's
    # step is bounded by lr: BN statistics overflow first, the next test's case)
    cfg = demo_video_cfg(tmp_path, **{
        'optim_wrapper.optimizer.type': 'SGD', 'optim_wrapper.optimizer.momentum': 0.9,
        'optim_wrapper.optimizer.lr': 1e6, 'optim_wrapper.clip_grad': None,
        'param_scheduler': [], 'train_cfg.max_iters': 6, 'train_cfg.val_interval': 6,
        'default_hooks.checkpoint.interval': 1})
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    err = info.value
    message = str(err)
    assert f'at iteration {err.iteration}:' in message and 1 < err.iteration <= 6
    assert f'cohort member {err.member.name!r} (width {err.member.width:g}, scale' in message
    assert err.terms and all(k in message for k in err.terms)
    # the weights never took the non-finite step: every checkpoint is finite
    checkpoints = glob.glob(str(tmp_path / 'work' / 'iter_*.pth'))
    assert osp.basename(max(checkpoints, key=osp.getmtime)) == f'iter_{err.iteration - 1}.pth'
    for path in checkpoints:
        state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values()
                   if v.is_floating_point()), path
    model = runner.model
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_diverging_adamw_run_is_stopped_before_a_non_finite_checkpoint(tmp_path,
                                                                          monkeypatch):
    # the demo's AdamW at lr 1e6: the loss stays finite while BN running variances
    # overflow; the run stops before mmengine's CheckpointHook deletes the kept
    # checkpoint (max_keep_ckpts=1 in the demo config) to write a non-finite one
    monkeypatch.chdir(tmp_path)
    cfg = demo_video_cfg(tmp_path, **{
        'optim_wrapper.optimizer.lr': 1e6, 'optim_wrapper.clip_grad': None,
        'param_scheduler': [], 'train_cfg.max_iters': 6, 'train_cfg.val_interval': 6,
        'default_hooks.checkpoint.interval': 1})
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 1
    with pytest.raises(FloatingPointError, match=(
            r'the model is not finite after iteration (\d+): \d+ of \d+ tensors '
            r'\(backbone\..*running_var.*stopped before any checkpoint was replaced')) as info:
        Runner.from_cfg(cfg).train()
    stopped_at = int(re.search(r'iteration (\d+)', str(info.value))[1])
    assert stopped_at > 1
    # the last finite iteration's checkpoint is kept (mmengine keeps one here)
    checkpoints = glob.glob(str(tmp_path / 'work' / 'iter_*.pth'))
    assert [osp.basename(p) for p in checkpoints] == [f'iter_{stopped_at - 1}.pth']
    for path in checkpoints:
        state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values()
                   if v.is_floating_point()), path


def test_a_checkpoint_with_non_finite_weights_is_refused_before_it_is_written():
    class FakeRunner:
        iter = 7

    hook = MutualLearningHook()
    good = dict(state_dict={'a.weight': torch.ones(2), 'a.num_batches': torch.tensor(3)})
    hook.before_save_checkpoint(FakeRunner(), good)
    assert 'cohort_sampler' in good and 'random_states' in good
    bad = dict(state_dict={'a.weight': torch.ones(2),
                           'b.weight': torch.tensor([1.0, float('nan')]),
                           'c.bias': torch.tensor([float('inf')])})
    with pytest.raises(FloatingPointError,
                       match=r'iteration 7: 2 of 3 tensors are not finite \(b.weight, c.bias\)'):
        hook.before_save_checkpoint(FakeRunner(), bad)


def test_resume_equals_the_uninterrupted_run_bit_for_bit_with_dropout(tmp_path, monkeypatch):
    """The demo video config (dropout 0.2, random crops, random cohorts): 4
    iterations in one go vs 2, a crash, and a resume."""
    from mmengine.runner import IterBasedTrainLoop
    monkeypatch.chdir(tmp_path)
    # validation right after the checkpoint the resume starts from
    options = {'train_cfg.max_iters': 4, 'train_cfg.val_interval': 2,
               'randomness': dict(seed=0), 'default_hooks.checkpoint.interval': 2,
               'default_hooks.checkpoint.max_keep_ckpts': -1}
    assert load_config(VIDEO_DEMO).model.cls_head.dropout_ratio > 0

    def losses_and_weights(runner):
        losses = []
        stock = IterBasedTrainLoop.run_iter

        def recording(loop, data_batch):
            stock(loop, data_batch)
            losses.append(float(loop.runner.message_hub.get_scalar('train/loss').current()))
        monkeypatch.setattr(IterBasedTrainLoop, 'run_iter', recording)
        runner.train()
        monkeypatch.setattr(IterBasedTrainLoop, 'run_iter', stock)
        return losses, {k: v.clone() for k, v in runner.model.state_dict().items()}

    cfg = demo_video_cfg(tmp_path, **options)
    cfg.work_dir = str(tmp_path / 'whole')
    whole_losses, whole_weights = losses_and_weights(Runner.from_cfg(cfg))

    cfg.work_dir = str(tmp_path / 'interrupted')
    stock = IterBasedTrainLoop.run_iter

    def crashes_at_iteration_3(loop, data_batch):
        if loop.runner.iter == 2:
            raise KeyboardInterrupt('killed')
        stock(loop, data_batch)

    monkeypatch.setattr(IterBasedTrainLoop, 'run_iter', crashes_at_iteration_3)
    with pytest.raises(KeyboardInterrupt):
        Runner.from_cfg(cfg.copy()).train()
    monkeypatch.setattr(IterBasedTrainLoop, 'run_iter', stock)
    cfg.resume = True
    resumed_losses, resumed_weights = losses_and_weights(Runner.from_cfg(cfg))

    assert resumed_losses == whole_losses[2:]
    assert set(resumed_weights) == set(whole_weights)
    for key, value in whole_weights.items():
        assert torch.equal(resumed_weights[key], value), key


def _coco_with_an_empty_image(root):
    from tools.data_generators.shapes_and_motion import make_coco_shapes
    ann = make_coco_shapes(str(root), num_images=4, size=(64, 48), seed=0)
    import json
    images = json.load(open(ann))['images']
    broken = root / images[2]['file_name']
    broken.write_bytes(b'')  # a zero-byte image
    return ann, 2, str(broken)


@pytest.mark.parametrize('num_workers', [0, 1])
def test_an_unreadable_image_names_its_file_and_index(tmp_path, num_workers):
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ann, index, path = _coco_with_an_empty_image(tmp_path)
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs')]
    dataset = dict(type='CocoDataset', data_root=str(tmp_path), ann_file=ann,
                   data_prefix=dict(img=''), pipeline=pipeline, test_mode=True,
                   metainfo=dict(classes=('rectangle', 'ellipse', 'triangle')))
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=num_workers, dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=False)))
    with pytest.raises(Exception) as info:
        next(iter(loader))
    text = str(info.value) + ''.join(getattr(info.value, '__notes__', []))
    assert f'while preparing sample {index} ({path}) of CocoDataset' in text
    assert 'ignore_empty=True' in text

    # the host's own option skips it: mmengine draws another sample
    pipeline[0]['ignore_empty'] = True
    dataset['test_mode'] = False
    skipping = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=False)))
    batch = next(iter(skipping))
    assert len(batch['inputs']) == 4
    assert all(s.img_path != path for s in batch['data_samples'])


def test_a_truncated_video_is_named_or_skipped_when_asked(tmp_path):
    from mmengine.registry import init_default_scope
    from tools.data_generators.shapes_and_motion import make_motion_videos
    init_default_scope('mmaction')
    ann = make_motion_videos(str(tmp_path), num_videos=4, size=(64, 48), num_frames=16)
    videos = sorted((tmp_path / 'videos').glob('*.mp4'))
    data = videos[1].read_bytes()
    videos[1].write_bytes(data[:len(data) // 3])  # truncated
    loading = [dict(type='DecordInit'),
               dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1),
               dict(type='DecordDecode')]
    tail = [dict(type='Resize', scale=(32, 32), keep_ratio=False),
            dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    dataset = dict(type='VideoDataset', ann_file=ann,
                   data_prefix=dict(video=str(tmp_path)), pipeline=loading + tail)
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=False)))
    with pytest.raises(Exception) as info:
        next(iter(loader))
    text = str(info.value) + ''.join(getattr(info.value, '__notes__', []))
    assert f'while preparing sample 1 ({videos[1]}) of VideoDataset' in text

    dataset['pipeline'] = [dict(type='SkipUnreadable', transforms=loading)] + tail
    batch = next(iter(Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=False)))))
    assert len(batch['inputs']) == 4


def test_what_was_trained_travels_with_the_checkpoint_and_bounds_deployment(trained):
    """The hook records its widths, views and distillation; calibration, testing at
    a subnet, the lookup table and export refuse anything outside them
    unless explicitly allowed (then the table marks it)."""
    from mutual_mm.deploy import (CalibratedSubnetHook, Subnet, build_lookup_table,
                                  calibrate_checkpoint, load_table, save_table)
    from mutual_mm.deploy import export_subnet_files as export
    from mutual_mm.engine.trained_space import TrainedSpace
    cfg, checkpoint, tmp = trained
    space = TrainedSpace.from_checkpoint(torch.load(checkpoint, weights_only=True))
    assert (space.width_range, space.scales, space.frames, space.distill) == \
        ([0.5, 1.0], [48, 40, 32], [4, 3, 2], 'kl')

    out = str(tmp / 'untrained.pth')
    trained_on = r'trained on widths 0\.5\.\.1, scales \[48, 40, 32\], frames \[4, 3, 2\]'
    for config, why in ((Subnet(0.25, 48, 4), 'width 0.25 is outside 0.5..1'),
                        (Subnet(0.5, 24, 4), 'input size 24 is outside'),
                        (Subnet(0.75, 40, 6), '6 frames is outside')):
        with pytest.raises(ValueError, match=rf'{config.key}: {why}.*{trained_on}.*'
                           r'--allow-untrained'):
            calibrate_checkpoint(cfg, checkpoint, out, [config], 1)
    inside = Subnet(0.75, 36, 3)  # between trained values: what MutualNet interpolates
    outside = Subnet(0.25, 48, 4)
    calibrate_checkpoint(cfg, checkpoint, out, [outside, inside], 1, allow_untrained=True)

    hook = CalibratedSubnetHook(width=0.25, scale=48, frames=4)
    hook.after_load_checkpoint(None, torch.load(out, weights_only=True))
    class NoRunner:  # refused before the runner's model or data are touched
        test_dataloader = model = None
        cfg = {}  # no top-level `subnet` (the hook reads what its arguments leave out)

    with pytest.raises(ValueError, match='width 0.25 is outside'):
        hook.before_test(NoRunner())
    with pytest.raises(ValueError, match='width 0.25 is outside'):
        build_lookup_table(cfg, out, [outside, inside])
    with pytest.raises(ValueError, match='width 0.25 is outside'):
        export(cfg, out, outside, str(tmp / 'export_untrained'))

    rows, _ = build_lookup_table(cfg, out, [outside, inside], allow_untrained=True)
    assert [r.trained for r in rows] == [False, True]
    files = save_table(rows, str(tmp / 'untrained_table'), 'acc/top1')
    assert [r.trained for r in load_table(files['csv'])] == [False, True]
    export(cfg, out, outside, str(tmp / 'export_untrained'), allow_untrained=True)
