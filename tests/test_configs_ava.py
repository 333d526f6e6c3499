"""The AVA v2.1 configs (configs/ava): the stock configs with the slim backbone at
full width, initialised from a Kinetics MutualNet checkpoint (paper Table IX).

Each config runs as written (its own ``data/ava/...`` paths, read from a working
directory holding a generated AVA set, and its own ``model.init_cfg`` loading a
Kinetics recognizer checkpoint written at its placeholder path); only sizes,
loader workers and the loop length are made small. Validation uses the real
``AVADataset`` and ``AVAMetric``.
"""
import copy
import math
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, METRICS, MODELS
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from tools.data_generators.ava import AVA_ACTIONS, ava_files, make_ava
from mutual_mm.utils import build_model, load_config

CONFIGS = {
    'slowonly': ('configs/ava/slowonly_slim-r50_4x16x1_ava21.py',
                 'mmaction::detection/slowonly/'
                 'slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py',
                 'SlimResNet3dSlowOnly'),
    'slowfast': ('configs/ava/slowfast_slim-r50_4x16x1_ava21.py',
                 'mmaction::detection/slowfast/'
                 'slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py',
                 'SlimResNet3dSlowFast'),
}
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZE = 48  # frames are 64x48: short side 48, train crops 48x48


def _config(name):
    return load_config(osp.join(ROOT, CONFIGS[name][0]))


@pytest.fixture(scope='module')
def ava_dir(tmp_path_factory):
    """A working directory whose data/ava holds a generated AVA v2.1 set."""
    root = tmp_path_factory.mktemp('ava')
    make_ava(str(root / 'data' / 'ava'), num_videos=2, timestamps=(902, 903), seed=0)
    return root


def _small(cfg, work_dir, max_iters=2):
    """The config with its own data paths, made small: tiny frames, no loader
    workers, an iteration loop validating after ``max_iters``."""
    clip_len = 8 if cfg.model.backbone.type == 'SlimResNet3dSlowFast' else None
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers, loader.persistent_workers = 0, False
        for t in loader.dataset.pipeline:
            if t.type == 'SampleAVAFrames' and clip_len:  # 8 frames: Fast 8, Slow 1
                t.clip_len = clip_len
            elif t.type == 'RandomRescale':
                t.scale_range = (SIZE, SIZE + 8)
            elif t.type == 'RandomCrop':
                t.size = SIZE
            elif t.type == 'Resize':
                t.scale = (-1, SIZE)
    cfg.train_dataloader.batch_size = 2
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=max_iters)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**6,
                                        by_epoch=False, save_last=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer.vis_backends = []
    cfg.work_dir = str(work_dir)
    return cfg


def _without_scopes(node):
    """A config dict without the ``_scope_`` keys mmengine adds to what a
    ``mmaction::`` base contributes."""
    if isinstance(node, dict):
        return {k: _without_scopes(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(_without_scopes(v) for v in node)
    return node


def _stock_backbone(name, seed=0):
    cfg = load_config(CONFIGS[name][1])
    torch.manual_seed(seed)
    return MODELS.build(cfg.model.backbone)


# ------------------------------------------------------------------ the config
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_is_the_stock_one_with_the_slim_backbone(name):
    """Only the backbone type and the pretrained checkpoint differ from stock;
    no MutualNet training parts (hook, MultiResolution)."""
    path, stock_name, backbone = CONFIGS[name]
    ours = _without_scopes(_config(name).to_dict())
    stock = _without_scopes(load_config(stock_name).to_dict())
    assert ours.pop('custom_imports') == dict(imports=['mutual_mm'],
                                              allow_failed_imports=False)
    checkpoint = ours.pop('kinetics_mutualnet')
    assert ours['model'].pop('init_cfg') == dict(type='Pretrained', checkpoint=checkpoint)
    assert 'kinetics400' in checkpoint and checkpoint.endswith('.pth')
    assert stock['model'].pop('init_cfg')['type'] == 'Pretrained'
    assert ours['model']['backbone'].pop('type') == backbone
    stock['model']['backbone'].pop('type')
    assert ours == stock
    assert 'MultiResolution' not in str(ours) and 'MutualLearningHook' not in str(ours)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_backbone_is_the_stock_one_at_full_width(name):
    model = build_model(_config(name))
    slim = model.backbone
    assert type(slim).__name__ == CONFIGS[name][2] and slim.width == 1.0
    stock = _stock_backbone(name, seed=1)
    assert list(slim.state_dict()) == list(stock.state_dict())
    slim.load_state_dict(stock.state_dict(), strict=True)
    slim.eval(), stock.eval()
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        for a, b in zip(slim(clip), stock(clip)):
            torch.testing.assert_close(a, b)


# ------------------------------------------------------------------- a real run
class _RecordInitialBackbone(Hook):
    """Keeps the backbone's weights as the run starts (after init_weights)."""

    def before_train(self, runner):
        self.state = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_trains_and_validates_with_the_ava_metric(name, ava_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ava_dir)  # the config's own data/ava/... paths
    cfg = _small(_config(name), tmp_path / 'work')
    # A Kinetics recognizer checkpoint (backbone.* + a 400-class cls_head) where
    # the config expects the MutualNet one: the slim backbones keep stock keys.
    stock = _stock_backbone(name, seed=2).state_dict()
    checkpoint = cfg.model.init_cfg.checkpoint
    os.makedirs(osp.dirname(checkpoint), exist_ok=True)
    state = {f'backbone.{k}': v for k, v in stock.items()}
    state.update({'cls_head.fc_cls.weight': torch.zeros(400, 8),
                  'cls_head.fc_cls.bias': torch.zeros(400)})
    torch.save(dict(state_dict=state, meta=dict()), checkpoint)

    runner = Runner.from_cfg(copy.deepcopy(cfg))
    record = _RecordInitialBackbone()
    runner.register_hook(record)
    runner.train()  # 2 iterations, then one validation pass with AVAMetric

    assert record.state.keys() == stock.keys()
    for key, value in stock.items():
        torch.testing.assert_close(record.state[key], value, msg=key)
    assert runner.model.backbone.width == 1.0
    metrics = {key: runner.message_hub.get_scalar(key).current()
               for key in runner.message_hub.log_scalars if key.startswith('val/mAP')}
    assert 'val/mAP/overall' in metrics, sorted(runner.message_hub.log_scalars)
    assert math.isfinite(metrics['val/mAP/overall'])
    assert 0 <= metrics['val/mAP/overall'] <= 1


# ---------------------------------------------------------------- missing data
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_missing_data_fails_naming_the_path(name, tmp_path, monkeypatch):
    """As written, in a directory without data/ava: the run stops before any
    work with mmaction's FileNotFoundError naming the first file it reads."""
    monkeypatch.chdir(tmp_path)
    cfg = _config(name)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FileNotFoundError, match='data/ava/annotations/ava_train_v2.1.csv'):
        runner.train()


@pytest.mark.parametrize('missing', [
    'ann_file_train', 'exclude_file_train', 'proposal_file_train', 'ann_file_val',
    'exclude_file_val', 'proposal_file_val', 'data_root', 'label_file'])
def test_each_missing_file_is_named(missing, tmp_path, monkeypatch):
    """Every file of the set, when missing, fails with its path: the datasets'
    files when they are built, the frames when a clip is read, the label map
    when AVAMetric computes (at the end of a validation pass)."""
    monkeypatch.chdir(tmp_path)
    files = ava_files('data/ava')
    make_ava('data/ava', num_videos=1, timestamps=(902, ))
    target = files[missing]
    (shutil.rmtree if osp.isdir(target) else os.remove)(target)
    cfg = _config('slowonly')
    path = target if missing != 'data_root' else osp.join(target, '')
    with pytest.raises(FileNotFoundError, match=path.replace('.', r'\.')):
        for loader in (cfg.train_dataloader, cfg.val_dataloader):
            DATASETS.build(loader.dataset)[0]
        METRICS.build(cfg.val_evaluator).compute_metrics([])


# ----------------------------------------------------------- the data, the metric
def test_generated_set_is_in_the_ava_format(tmp_path):
    import pickle
    files = make_ava(str(tmp_path / 'ava'), num_videos=1, timestamps=(902, 905),
                     num_persons=2, seed=3)
    rows = [r.split(',') for r in open(files['ann_file_train']).read().split()]
    assert all(len(r) == 8 for r in rows)
    assert {r[1] for r in rows} == {'0902', '0905'}
    assert {int(r[6]) for r in rows} <= set(AVA_ACTIONS) and len(AVA_ACTIONS) == 60
    assert all(0 <= float(v) <= 1 for r in rows for v in r[2:6])
    video = rows[0][0]
    excluded = open(files['exclude_file_train']).read().split()
    assert excluded == [f'{video},0906']
    frames = sorted(os.listdir(osp.join(files['data_root'], video)))
    assert frames[0] == 'img_00001.jpg' and len(frames) == 5 * 30 + 1 + 48
    with open(files['proposal_file_train'], 'rb') as f:
        proposals = pickle.load(f)
    assert set(proposals) == {f'{video},0902', f'{video},0905', f'{video},0906'}
    assert all(p.shape == (3, 5) and p.min() >= 0 and p.max() <= 1
               for p in proposals.values())
    again = make_ava(str(tmp_path / 'again'), num_videos=1, timestamps=(902, 905),
                     num_persons=2, seed=3)
    assert open(again['ann_file_train']).read() == open(files['ann_file_train']).read()


def test_ava_metric_gives_nan_ap_for_a_class_without_ground_truth():
    """mutual_mm.compat repairs mmaction's ``np.NAN`` (gone in numpy 2)."""
    from mmaction.evaluation.functional.ava_evaluation import metrics
    assert math.isnan(metrics.compute_average_precision(None, None))
    with pytest.raises(ValueError):
        metrics.compute_average_precision(None, torch.zeros(1).numpy())
