"""MutualImageClassifier, its data side, the ImageNet pre-training configs and the
pre-trained backbone's hand-over to detection."""
import copy
import gzip
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement

import mutual_mm  # noqa: F401
from mutual_mm.datasets.classification import (ClsRandomResizedCrop, ClsResizeEdge,
                                               ImageListDataset, MNISTIdxDataset,
                                               TopKAccuracy, read_idx)
from mutual_mm.engine import MutualLearningHook

from .helpers import needs, write_fake_fashion_mnist

pytestmark = pytest.mark.core

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = osp.join(ROOT, 'configs', 'pretrain')


def tiny_classifier(num_classes=5, widen_factor=0.25, **kwargs):
    return dict(type='MutualImageClassifier',
                backbone=dict(type='SlimMobileNetV1', widen_factor=widen_factor,
                              out_indices=(4,)),
                head=dict(type='MutualLinearClsHead', num_classes=num_classes,
                          in_channels=int(1024 * widen_factor)), **kwargs)


def samples(labels):
    return [BaseDataElement(gt_label=torch.tensor([label])) for label in labels]


@pytest.mark.parametrize('scope', ['mmengine', 'mmdet', 'mmaction'])
def test_builds_by_plain_name_and_forward_modes(scope):
    init_default_scope(scope)
    model = MODELS.build(tiny_classifier())
    model.init_weights()
    x = torch.rand(3, 3, 64, 64)
    assert model(x).shape == (3, 5)  # tensor mode: logits
    preds = model(x, samples([0, 1, 2]), mode='predict')
    for p in preds:
        assert p.pred_score.shape == (5,)
        torch.testing.assert_close(p.pred_score.sum(), torch.tensor(1.0))
        assert p.pred_label.item() == p.pred_score.argmax().item()
        assert 'gt_label' in p
    with pytest.raises(RuntimeError, match='invalid mode'):
        model(x, mode='bogus')


@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_loss_is_cross_entropy_of_the_head_logits(smoothing):
    init_default_scope('mmengine')
    model = MODELS.build(tiny_classifier(label_smoothing=smoothing)).eval()
    x = torch.rand(4, 3, 48, 48)
    labels = torch.tensor([0, 4, 2, 2])
    loss = model(x, samples(labels.tolist()), mode='loss')['loss_cls']
    ref = F.cross_entropy(model(x), labels, label_smoothing=smoothing)
    torch.testing.assert_close(loss, ref)
    with pytest.raises(ValueError, match='gt_label'):
        model(x, [BaseDataElement()] * 4, mode='loss')


def test_slimmed_classifier_and_deploy_tools():
    from mutual_mm.deploy import calibrate_bn, measure_complexity
    from mutual_mm.hosts import host_of
    init_default_scope('mmengine')
    model = MODELS.build(tiny_classifier())
    assert host_of(model).logits_head() is model.head  # KL distillation target
    batch = dict(inputs=[torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)] * 2,
                 data_samples=samples([1, 2]))
    flops = {}
    for width in (1.0, 0.5):
        mutual_mm.set_model_width(model, width)
        assert model(torch.rand(2, 3, 40, 40)).shape == (2, 5)
        flops[width] = measure_complexity(model, batch)[0]
    assert flops[0.5] < 0.5 * flops[1.0]
    stats = calibrate_bn(model, [batch], num_batches=1, width=0.5)
    assert stats['backbone.stem.bn'][0].numel() == 8  # 0.5 x 16 channels


# ----------------------------------------------------------------- data side
def test_transforms_and_metric():
    img = np.random.randint(0, 256, (50, 80, 3), dtype=np.uint8)
    out = ClsRandomResizedCrop(scale=32, crop_ratio_range=(0.25, 1.0)).transform(
        dict(img=img.copy()))
    assert out['img'].shape == (32, 32, 3) and out['img_shape'] == (32, 32)
    crop = ClsRandomResizedCrop(scale=(24, 16))
    for _ in range(20):
        y, x, h, w = crop.crop_box(50, 80)
        assert 0 <= y and y + h <= 50 and 0 <= x and x + w <= 80
    assert ClsResizeEdge(scale=25).transform(dict(img=img))['img'].shape == (25, 40, 3)
    with pytest.raises(ValueError, match='crop_ratio_range'):
        ClsRandomResizedCrop(scale=8, crop_ratio_range=(0.5, 2.0))

    metric = TopKAccuracy(topk=(1, 2))
    scores = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.5, 0.4]])
    metric.process(None, [dict(pred_score=s, gt_label=torch.tensor([g]))
                          for s, g in zip(scores, [0, 1, 2])])
    result = metric.evaluate(3)
    assert result['accuracy/top1'] == pytest.approx(100 / 3)
    assert result['accuracy/top2'] == pytest.approx(100.0)


def write_image_folder(root, classes=('cat', 'dog'), per_class=2, size=(40, 30)):
    rng = np.random.default_rng(0)
    lines = []
    for label, name in enumerate(classes):
        for split in ('train', 'val'):
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            for split in ('train', 'val'):
                cv2.imwrite(str(root / split / name / f'{i}.JPEG'), img)
            lines.append(f'{name}/{i}.JPEG {label}')
    (root / 'meta').mkdir(exist_ok=True)
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines) + '\n')


def test_image_list_dataset_folder_and_list_modes(tmp_path):
    write_image_folder(tmp_path)
    folder = ImageListDataset(data_root=str(tmp_path), data_prefix=dict(img_path='train'))
    assert folder.metainfo['classes'] == ('cat', 'dog')
    assert [d['gt_label'] for d in folder] == [0, 0, 1, 1]
    listed = ImageListDataset(data_root=str(tmp_path), ann_file='meta/val.txt',
                              data_prefix=dict(img_path='val'))
    assert [osp.relpath(d['img_path'], tmp_path) for d in listed][:1] == [
        osp.join('val', 'cat', '0.JPEG')]
    assert [d['gt_label'] for d in listed] == [0, 0, 1, 1]
    with pytest.raises(FileNotFoundError, match='no image folder'):
        ImageListDataset(data_root=str(tmp_path), data_prefix=dict(img_path='nope'))


def test_mnist_idx_dataset(tmp_path):
    root = write_fake_fashion_mnist(tmp_path / 'fm', num_train=12, num_test=5)
    ds = MNISTIdxDataset(data_root=str(root), split='train', indices=10)
    assert len(ds) == 10
    info = ds[3]
    assert info['img'].shape == (28, 28, 3) and info['img'].dtype == np.uint8
    assert (info['img'][..., 0] == info['img'][..., 2]).all()
    labels = read_idx(str(root / 'train-labels-idx1-ubyte.gz'))
    assert info['gt_label'] == labels[3]
    assert len(MNISTIdxDataset(data_root=str(root), split='test')) == 5
    with pytest.raises(FileNotFoundError, match='dataset-fashion-mnist'):
        MNISTIdxDataset(data_root=str(tmp_path), split='test')
    (tmp_path / 'bad.gz').write_bytes(gzip.compress(b'\x00\x00\x08\x01\x00\x00\x00\x05ab'))
    with pytest.raises(ValueError, match='header says'):
        read_idx(str(tmp_path / 'bad.gz'))


# ----------------------------------------------------------- hooked training
def _hooked_mbv1_cfg(tmp_path, max_iters=1):
    """configs/pretrain/mbv1_mutual_imagenet.py as written (pipelines, hook,
    optimizer), on a generated 2-class image folder; only sizes shrunk."""
    write_image_folder(tmp_path / 'imagenet')
    cfg = Config.fromfile(osp.join(PRETRAIN, 'mbv1_mutual_imagenet.py'))
    cfg.model.backbone.widen_factor = 0.25
    cfg.model.head.update(num_classes=2, in_channels=256)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(tmp_path / 'imagenet')
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=10**6)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max_iters,
                                        by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer = dict(type='Visualizer', vis_backends=[])
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


def test_pretrain_config_trains_with_kl_and_tests(tmp_path):
    cfg = _hooked_mbv1_cfg(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/full.loss_cls'].current())
    for member in ('min', 'rand0', 'rand1'):
        assert np.isfinite(scalars[f'train/{member}.loss_kl'].current())
        assert f'train/{member}.loss_cls' not in scalars
    assert scalars['train/full.res'].current() == 224
    assert scalars['train/min.width'].current() == 0.25
    hook = [h for h in runner.hooks if isinstance(h, MutualLearningHook)][0]
    assert hook.resolved_distill == 'kl' and hook.num_views == 4
    metrics = runner.test()
    assert set(metrics) == {'accuracy/top1', 'accuracy/top5'}


def test_hooked_gradient_is_the_sum_of_member_gradients(tmp_path):
    """Full member: CE; sub-networks: KL to the full network's detached logits;
    the optimizer sees the sum of the members' gradients."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper

    from mutual_mm.engine import Member, kl_to_teacher, split_views
    cfg = _hooked_mbv1_cfg(tmp_path)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    hook = [h for h in runner.hooks if isinstance(h, MutualLearningHook)][0]
    hook.before_train(runner)  # set-up only: the step of the config's hook
    dataset = runner.train_dataloader.dataset
    data = pseudo_collate([dataset[0], dataset[2]])
    cohort = [Member('full', 1.0, 0), Member('min', 0.25, 3), Member('rand0', 0.6, 1)]

    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    hooked = {}
    optimizer.register_step_pre_hook(lambda *a: hooked.update(
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    hook.step.train_step(data, OptimWrapper(optimizer), cohort)

    views = split_views(data, 4)
    separate, teacher = {}, None
    for member in cohort:
        model.zero_grad()
        model.backbone.set_width(member.width)
        batch = model.data_preprocessor(views[member.view], True)
        logits = model.head(model.backbone(batch['inputs']))
        if member.name == 'full':
            labels = torch.cat([s.gt_label for s in batch['data_samples']])
            loss = F.cross_entropy(logits, labels)
            teacher = logits.detach()
        else:
            loss = kl_to_teacher(logits, teacher)
        loss.backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                separate[name] = separate.get(name, 0) + p.grad.clone()
    assert hooked.keys() == separate.keys()
    for name, grad in separate.items():
        torch.testing.assert_close(hooked[name], grad, rtol=1e-4, atol=1e-6, msg=name)


# ------------------------------------------------ pre-training -> detection
@pytest.mark.parametrize('config', sorted(
    ['mbv1_mutual_imagenet.py', 'mbv2_mutual_imagenet.py', 'r50_mutual_imagenet.py',
     'vgg16_mutual_imagenet.py', 'usnet_mbv1_imagenet.py']))
def test_pretrain_configs_parse_and_build(config):
    cfg = Config.fromfile(osp.join(PRETRAIN, config))
    init_default_scope(cfg.default_scope)
    assert cfg.default_scope == 'mmengine'
    hook = cfg.custom_hooks[0]
    assert hook.type == 'MutualLearningHook' and hook.distill == 'kl'
    expected = {'mbv1': (0.25, 1.0), 'mbv2': (0.7, 1.0), 'r50': (0.7, 1.0),
                'vgg16': (0.25, 1.0), 'usnet': (0.25, 1.0)}[config.split('_')[0]]
    assert tuple(hook.width_range) == expected
    multi = [t for t in cfg.train_dataloader.dataset.pipeline
             if t.type == 'MultiResolution']
    if config.startswith('usnet'):
        assert not multi and hook.multi_resolution is False
    else:
        assert multi[0].scales == [224, 192, 160, 128]
    assert cfg.test_dataloader.dataset.pipeline[-2] == dict(
        type='Resize', scale=224, keep_ratio=False)  # where a subnet's size goes
    from mmengine.dataset import Compose
    Compose(cfg.train_dataloader.dataset.pipeline)
    Compose(cfg.test_dataloader.dataset.pipeline)


DETECTION_BACKBONES = {
    # the backbones of configs/mask_rcnn/* (and SlimMobileNetV1's FPN default)
    'mbv1_mutual_imagenet.py': dict(type='SlimMobileNetV1', out_indices=(1, 2, 3, 4)),
    'mbv2_mutual_imagenet.py': dict(type='SlimMobileNetV2', widen_factor=1.0,
                                    out_indices=(1, 2, 4, 7)),
    'vgg16_mutual_imagenet.py': dict(type='SlimVGG', depth=16, with_bn=True,
                                     out_indices=(1, 2, 3, 4), frozen_stages=0),
}


@needs('mmdet')
@pytest.mark.parametrize('config', sorted(DETECTION_BACKBONES))
def test_pretrained_backbone_loads_strictly_into_the_detection_backbone(tmp_path, config):
    cfg = Config.fromfile(osp.join(PRETRAIN, config))
    init_default_scope('mmdet')
    classifier = MODELS.build(cfg.model)
    state = {k[len('backbone.'):]: v for k, v in classifier.state_dict().items()
             if k.startswith('backbone.')}
    det_backbone = MODELS.build(DETECTION_BACKBONES[config])
    assert set(state) == set(det_backbone.state_dict())
    det_backbone.load_state_dict(state, strict=True)


@needs('mmdet')
def test_r50_checkpoint_initializes_mask_rcnn_through_init_cfg(tmp_path):
    """The hand-over as a user writes it: the stock Mask R-CNN config with
    SlimResNet and init_cfg=Pretrained(checkpoint, prefix='backbone.')."""
    from mutual_mm.utils import load_config
    cfg = Config.fromfile(osp.join(PRETRAIN, 'r50_mutual_imagenet.py'))
    init_default_scope('mmengine')
    classifier = MODELS.build(cfg.model)
    classifier.init_weights()
    with torch.no_grad():  # make every tensor distinguishable from a fresh init
        for p in classifier.backbone.parameters():
            p.add_(torch.randn_like(p))
        for name, buf in classifier.backbone.named_buffers():
            if 'running' in name:
                buf.add_(torch.rand_like(buf))
    ckpt = tmp_path / 'pretrained.pth'
    torch.save(dict(state_dict=classifier.state_dict(), meta={}), ckpt)

    det_cfg = load_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    det_cfg.model.backbone.type = 'SlimResNet'
    det_cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(ckpt),
                                           prefix='backbone.')
    detector = MODELS.build(det_cfg.model)
    detector.init_weights()
    expected = classifier.backbone.state_dict()
    loaded = detector.backbone.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_amp_optim_wrapper_runs_every_member_under_autocast(tmp_path, monkeypatch):
    """AmpOptimWrapper with the hook (mmengine allows it only with a GPU, and on
    the CPU only bfloat16: its device check is bypassed on this CPU machine):
    every member's forward runs inside the wrapper's autocast context, the loss
    goes through its scaler's backward, and the optimizer steps once."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    cfg = _hooked_mbv1_cfg(tmp_path)
    cfg.optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                             optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
    runner = Runner.from_cfg(cfg)
    dtypes, steps = [], []
    runner.model.backbone.stem.conv.register_forward_hook(
        lambda m, a, out: dtypes.append(out.dtype) if m.training else None)
    sgd_step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, 'step',
                        lambda self, *a, **k: steps.append(1) or sgd_step(self, *a, **k))
    runner.train()
    assert dtypes == [torch.bfloat16] * 4  # full, min, rand0, rand1
    assert steps == [1]
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/full.loss_cls'].current())
    assert all(np.isfinite(scalars[f'train/{m}.loss_kl'].current())
               for m in ('min', 'rand0', 'rand1'))
