"""Charades: the CSV, clip labels, the mAP metric, max over clips, the configs run."""
import copy
import csv
import os.path as osp

import numpy as np
import pytest
import torch

import mutual_mm  # noqa: F401  (repairs the stack first)
from mmengine.registry import DATASETS, METRICS, MODELS, init_default_scope
from mmengine.runner import Runner

from mutual_mm.datasets.charades import CharadesClipLabels, parse_charades_actions
from tools.data_generators.charades import CHARADES_COLUMNS, make_charades
from mutual_mm.utils import load_config

SLOWONLY_CFG = 'configs/charades/slowonly_slim-r50_8x8x1_charades-ft.py'
SLOWFAST_CFG = 'configs/charades/slowfast_slim-r50_4x16x1_charades-ft.py'
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _mmaction_scope():
    init_default_scope('mmaction')


# ------------------------------------------------------------------ the CSV
ROWS = [  # id, actions; descriptions with commas and quotes, as the real file
    ('46GP8', 'c092 11.90 21.20;c147 0.00 12.60'),
    ('N11GT', 'c098 8.60 14.20;c075 0.00 11.70;c098 18.00 20.50;c000 1.00 2.00'),
    ('0IH69', ''),
    ('KRF68', ' c156 3.00 9.50 '),
]


def _write_csv(path, rows=ROWS):
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CHARADES_COLUMNS)
        writer.writeheader()
        for vid, actions in rows:
            writer.writerow(dict(
                id=vid, subject='HR43', scene='Kitchen', quality=6, relevance=7,
                verified='Yes', script='A person cooking, then "eating"; later sits.',
                objects='food;table', descriptions='A person cooks, eats; "sits".',
                actions=actions, length='33.67'))
    return str(path)


def test_parse_actions_multiple_empty_and_errors():
    got = parse_charades_actions('c092 11.90 21.20;c147 0.00 12.60')
    np.testing.assert_array_equal(got, [[92, 11.9, 21.2], [147, 0.0, 12.6]])
    assert parse_charades_actions('').shape == (0, 3)
    assert parse_charades_actions(None).shape == (0, 3)
    assert parse_charades_actions(' c001 1 2 ; ').tolist() == [[1, 1, 2]]
    with pytest.raises(ValueError, match=r"x.csv:3: action 'c157 1 2': class 157"):
        parse_charades_actions('c157 1 2', where='x.csv:3')
    with pytest.raises(ValueError, match="valid form is 'cXXX start end'"):
        parse_charades_actions('c012 1.0')
    with pytest.raises(ValueError, match="'92 1 2'"):
        parse_charades_actions('92 1 2')


def test_dataset_reads_the_csv_into_video_level_multi_hot_labels(tmp_path):
    ann = _write_csv(tmp_path / 'Charades_v1_test.csv')
    (tmp_path / 'videos').mkdir()
    ds = DATASETS.build(dict(type='CharadesDataset', ann_file=ann, pipeline=[],
                             data_prefix=dict(video=str(tmp_path / 'videos')),
                             test_mode=True))
    assert len(ds) == 4
    expected = [[92, 147], [0, 75, 98], [], [156]]
    for i, ((vid, _), classes) in enumerate(zip(ROWS, expected)):
        info = ds.get_data_info(i)
        assert info['video_id'] == vid
        assert info['filename'] == str(tmp_path / 'videos' / f'{vid}.mp4')
        assert info['start_index'] == 0 and info['modality'] == 'RGB'
        assert info['label'].shape == (157,) and info['label'].dtype == torch.float32
        assert info['label'].nonzero().flatten().tolist() == classes
        assert info['label'].sum() == len(classes)
    np.testing.assert_allclose(ds.get_data_info(1)['actions'][2], [98, 18.0, 20.5])
    assert ds.get_data_info(2)['actions'].shape == (0, 3)  # kept, all-zero target

    dropped = DATASETS.build(dict(type='CharadesDataset', ann_file=ann, pipeline=[],
                                  data_prefix=dict(video=str(tmp_path / 'videos')),
                                  filter_empty=True))
    assert [dropped.get_data_info(i)['video_id'] for i in range(len(dropped))] == \
        ['46GP8', 'N11GT', 'KRF68']


def test_dataset_frames_layout(tmp_path):
    ann = _write_csv(tmp_path / 'a.csv', ROWS[:2])
    for vid, n in (('46GP8', 5), ('N11GT', 3)):
        (tmp_path / 'rgb' / vid).mkdir(parents=True)
        for k in range(1, n + 1):
            (tmp_path / 'rgb' / vid / f'{vid}-{k:06d}.jpg').write_bytes(b'')
    ds = DATASETS.build(dict(type='CharadesDataset', ann_file=ann, pipeline=[],
                             data_prefix=dict(img=str(tmp_path / 'rgb'))))
    info = ds.get_data_info(0)
    assert info['frame_dir'] == str(tmp_path / 'rgb' / '46GP8')
    assert info['filename_tmpl'].format(1) == '46GP8-000001.jpg'
    assert (info['start_index'], info['avg_fps'], info['total_frames']) == (1, 24, 5)
    assert ds.get_data_info(1)['total_frames'] == 3


def test_missing_data_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='annotation CSV not found: .*nope.csv'):
        DATASETS.build(dict(type='CharadesDataset', ann_file=str(tmp_path / 'nope.csv'),
                            pipeline=[], data_prefix=dict(video=str(tmp_path))))
    ann = _write_csv(tmp_path / 'a.csv')
    with pytest.raises(FileNotFoundError, match=r'video directory not found: .*vids '
                                                r'\(expected \{id\}.mp4'):
        DATASETS.build(dict(type='CharadesDataset', ann_file=ann, pipeline=[],
                            data_prefix=dict(video=str(tmp_path / 'vids'))))
    with pytest.raises(FileNotFoundError, match='frame directory not found: .*rgb'):
        DATASETS.build(dict(type='CharadesDataset', ann_file=ann, pipeline=[],
                            data_prefix=dict(img=str(tmp_path / 'rgb'))))


def test_missing_data_of_the_provided_config_fails_naming_it(tmp_path, monkeypatch):
    """The configs' default paths (data/charades/...) from a directory without them."""
    cfg = load_config(osp.join(ROOT, SLOWONLY_CFG))
    monkeypatch.chdir(tmp_path)
    missing_csv = 'annotation CSV not found: data/charades/annotations/Charades_v1_train.csv'
    with pytest.raises(FileNotFoundError, match=missing_csv):
        DATASETS.build(cfg.train_dataloader.dataset)
    cfg.work_dir, cfg.visualizer.vis_backends = str(tmp_path / 'work'), []
    with pytest.raises(FileNotFoundError, match=missing_csv):  # what `mim train` shows
        Runner.from_cfg(copy.deepcopy(cfg)).train()
    (tmp_path / 'data/charades/annotations').mkdir(parents=True)
    _write_csv(tmp_path / 'data/charades/annotations/Charades_v1_test.csv')
    with pytest.raises(FileNotFoundError, match='video directory not found: data/charades/videos'):
        DATASETS.build(cfg.val_dataloader.dataset)


# ------------------------------------------------------------------ clip labels
def _reference_clip_labels(frame_inds, actions, fps, num_classes):
    """PySlowFast: per-frame labels (start <= t <= end), aggregated over the frames
    from the first to the last sampled one (per increasing run)."""
    label = np.zeros(num_classes)
    runs, run = [], [frame_inds[0]]
    for i in frame_inds[1:]:
        if i < run[-1]:
            runs.append(run)
            run = []
        run.append(i)
    runs.append(run)
    for run in runs:
        for k in range(run[0], run[-1] + 1):
            for c, s, e in actions:
                if s <= k / fps + 1e-9 and k / fps <= e + 1e-9:
                    label[int(c)] = 1
    return label


def _clip_label(frame_inds, actions, fps=24, start_index=0, num_classes=10):
    results = dict(frame_inds=np.asarray(frame_inds) + start_index, start_index=start_index,
                   avg_fps=fps, actions=np.asarray(actions, float).reshape(-1, 3),
                   label=torch.zeros(num_classes))
    return CharadesClipLabels()(results)['label'].nonzero().flatten().tolist()


def test_clip_labels_hand_cases():
    # frames at 24 fps: class 5 on frames 12..24, class 7 on 48..72, class 9 on 0..4
    actions = [(5, 0.5, 1.0), (7, 2.0, 3.0), (9, 0.0, 0.2)]
    assert _clip_label([0, 8, 16], actions) == [5, 9]
    assert _clip_label([20, 28, 36, 44], actions) == [5]
    assert _clip_label([25, 33, 41, 47], actions) == []       # between two actions
    assert _clip_label([40, 48], actions) == [7]              # start frame inclusive
    assert _clip_label([64, 70, 0, 2], actions) == [7, 9]     # wrapped: 2 spans, not 0..70
    assert _clip_label([0, 8, 16], actions, start_index=1) == [5, 9]  # frames from 1
    assert _clip_label([0, 8, 16], [], num_classes=157) == []
    assert _clip_label([10, 20], actions, fps=10) == [5, 7]  # fps from DecordInit


def test_clip_labels_equal_pyslowfast_reference_on_random_clips():
    rng = np.random.default_rng(0)
    for _ in range(200):
        fps = float(rng.choice([24, 30, 29.97, 12]))
        starts = rng.uniform(0, 8, 6).round(2)
        actions = np.stack([rng.integers(0, 20, 6), starts,
                            (starts + rng.uniform(0, 3, 6)).round(2)], 1)
        total = int(rng.integers(10, 200))
        offset, stride = int(rng.integers(0, total)), int(rng.integers(1, 9))
        inds = list(np.mod(offset + stride * np.arange(8), total))
        got = np.zeros(20)
        got[_clip_label(inds, actions, fps=fps, num_classes=20)] = 1
        np.testing.assert_array_equal(got, _reference_clip_labels(inds, actions, fps, 20))


def test_clip_labels_need_the_sampled_frames():
    with pytest.raises(KeyError, match="needs 'frame_inds': place it after DecordInit"):
        CharadesClipLabels()(dict(label=torch.zeros(3), actions=np.zeros((0, 3))))


def test_frames_pipeline_gives_clip_labels(tmp_path):
    ann = make_charades(str(tmp_path), num_videos=3, with_frames=True, seed=3)
    pipeline = [dict(type='SampleFrames', clip_len=4, frame_interval=4),
                dict(type='CharadesClipLabels'), dict(type='RawFrameDecode'),
                dict(type='Resize', scale=(32, 32), keep_ratio=False),
                dict(type='FormatShape', input_format='NCTHW'), dict(type='PackActionInputs')]
    ds = DATASETS.build(dict(type='CharadesDataset', ann_file=ann, pipeline=pipeline,
                             data_prefix=dict(img=str(tmp_path / 'rawframes'))))
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['total_frames'] == len(list((tmp_path / 'rawframes' /
                                                info['video_id']).iterdir()))
        np.random.seed(i)
        out = ds[i]
        np.random.seed(i)
        inds = ds.pipeline.transforms[0](ds.get_data_info(i))['frame_inds'] - 1
        assert out['inputs'].shape == (1, 3, 4, 32, 32)
        ref = _reference_clip_labels(list(inds), info['actions'], 24, 157)
        np.testing.assert_array_equal(out['data_samples'].gt_label.numpy(), ref)
        assert set(np.flatnonzero(ref)) <= set(np.flatnonzero(info['label'].numpy()))


# ------------------------------------------------------------------ the metric
def _reference_map(scores, labels):
    """AP = mean over positives of the precision at their rank (distinct scores);
    classes without positives are left out (PySlowFast's get_map)."""
    aps = []
    for s, y in zip(np.asarray(scores).T, np.asarray(labels).T):
        if y.sum() == 0:
            continue
        order = np.argsort(-s)
        hits = y[order] == 1
        precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps.append(precision_at_hits.mean())
    return float(np.mean(aps))


def _evaluate(scores, labels):
    metric = METRICS.build(dict(type='CharadesMAP'))
    metric.dataset_meta = {}
    samples = [dict(pred_score=torch.tensor(s, dtype=torch.float32),
                    gt_label=torch.tensor(y, dtype=torch.float32))
               for s, y in zip(scores, labels)]
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_map_hand_computed():
    scores = [[0.9, 0.2, 0.5], [0.8, 0.7, 0.1], [0.3, 0.6, 0.4], [0.1, 0.4, 0.3]]
    labels = [[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]]
    # class 0: hits at ranks 1 and 3 -> (1 + 2/3) / 2; class 1: rank 3 -> 1/3;
    # class 2 has no positive: left out
    expected = ((1 + 2 / 3) / 2 + 1 / 3) / 2
    assert expected == pytest.approx(7 / 12)
    assert _evaluate(scores, labels) == {'charades/mAP': pytest.approx(expected)}
    assert _reference_map(scores, labels) == pytest.approx(expected)


def test_map_equals_reference_on_random_multi_label_data():
    rng = np.random.default_rng(1)
    scores = rng.random((40, 157))
    labels = (rng.random((40, 157)) < 0.05).astype(float)
    assert (labels.sum(0) == 0).any()  # some classes have no positive
    got = _evaluate(scores, labels)['charades/mAP']
    assert got == pytest.approx(_reference_map(scores, labels), abs=1e-6)  # float32 scores
    # ranks only: logits and sigmoid probabilities give the same mAP
    assert _evaluate(np.log(scores / (1 - scores)), labels)['charades/mAP'] == \
        pytest.approx(got, abs=1e-6)


def test_map_rejects_single_label_samples():
    metric = METRICS.build(dict(type='CharadesMAP'))
    with pytest.raises(ValueError, match='CharadesMAP needs multi-hot gt_label'):
        metric.process({}, [dict(pred_score=torch.rand(5), gt_label=torch.tensor([2]))])


# ------------------------------------------------------------------ max over clips
@pytest.mark.parametrize('head', [
    dict(type='MaxClipI3DHead', in_channels=16),
    dict(type='MaxClipSlowFastHead', in_channels=16)])
def test_max_over_clips_equals_reference(head):
    from mmaction.structures import ActionDataSample
    model = MODELS.build(dict(head, num_classes=7, average_clips='max', multi_class=True,
                              loss_cls=dict(type='BCELossWithLogits')))
    logits = torch.randn(2 * 5, 7, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([logits[v * 5:(v + 1) * 5].sigmoid().max(0).values
                            for v in range(2)])
    torch.testing.assert_close(model.average_clip(logits, num_segs=5), expected)
    samples = model.predict_by_feat(logits, [ActionDataSample() for _ in range(2)])
    torch.testing.assert_close(torch.stack([s.pred_score for s in samples]), expected)
    model.average_clips = 'prob'  # the stock modes are untouched
    torch.testing.assert_close(model.average_clip(logits, num_segs=5),
                               logits.view(2, 5, 7).softmax(2).mean(1))


# ------------------------------------------------------------------ the configs run
def _shrink(pipeline, clip_len, frame_interval, num_clips):
    sizes = dict(RandomRescale=dict(scale_range=(40, 48)), RandomCrop=dict(size=32),
                 Resize=dict(scale=(-1, 40)), CenterCrop=dict(crop_size=32),
                 ThreeCrop=dict(crop_size=40))  # = the short side, as 256 in the config
    for t in pipeline:
        t.update(sizes.get(t['type'], {}))
        if t['type'] == 'SampleFrames':
            t.update(clip_len=clip_len, frame_interval=frame_interval)
            if t.get('num_clips', 1) > 1:
                t.update(num_clips=num_clips)
    return pipeline


def charades_cfg(config, tmp_path, clip_len, frame_interval, num_clips=2):
    """A provided config with only data paths, sizes and length changed: 4 training
    videos, batch 2, one epoch = 2 iterations; 3 validation/test videos."""
    cfg = load_config(osp.join(ROOT, config))
    root = tmp_path / 'data'
    train_csv = make_charades(str(root), num_videos=4, seed=0)
    test_csv = make_charades(str(root), num_videos=3, seed=1, ann_file='Charades_v1_test.csv')
    for split, ann in (('train', train_csv), ('val', test_csv), ('test', test_csv)):
        loader = cfg[f'{split}_dataloader']
        loader.update(num_workers=0, persistent_workers=False,
                      batch_size=1 if split == 'test' else 2)
        loader.dataset.update(ann_file=ann, data_prefix=dict(video=str(root / 'videos')))
        _shrink(loader.dataset.pipeline, clip_len, frame_interval, num_clips)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.load_from = None
    cfg.visualizer.vis_backends = []
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


def test_slowonly_config_trains_validates_and_tests(tmp_path):
    cfg = charades_cfg(SLOWONLY_CFG, tmp_path, clip_len=4, frame_interval=2)
    # the Kinetics MutualNet checkpoint: a 400-class model of the Kinetics config
    kinetics = load_config('mmaction::recognition/slowonly/'
                           'slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py')
    kinetics.model.backbone.update(type='SlimResNet3dSlowOnly', pretrained=None)
    source = MODELS.build(kinetics.model)
    ckpt = str(tmp_path / 'kinetics.pth')
    torch.save(dict(state_dict=source.state_dict()), ckpt)
    cfg.load_from = ckpt

    runner = Runner.from_cfg(copy.deepcopy(cfg))
    model = runner.model
    assert type(model.backbone).__name__ == 'SlimResNet3dSlowOnly'
    # full width, no MutualLearningHook (Table VIII protocol)
    assert 'MutualLearningHook' not in [type(h).__name__ for h in runner.hooks]
    runner.load_or_resume()
    stem = 'backbone.conv1.conv.weight'
    torch.testing.assert_close(model.state_dict()[stem], source.state_dict()[stem])
    assert model.cls_head.fc_cls.weight.shape == (157, 2048)  # not loaded (400 classes)

    runner.train()
    assert runner.iter == 2
    loss = runner.message_hub.get_scalar('train/loss_cls').current()
    assert np.isfinite(loss) and loss > 0

    val = runner.val()
    assert set(val) == {'charades/mAP'} and 0 < val['charades/mAP'] <= 1

    # multi-clip test: 2 clips x 3 crops, a video's score = max of the views' sigmoids
    test = runner.test()
    assert 0 < test['charades/mAP'] <= 1
    batch = next(iter(runner.test_dataloader))
    model.eval()
    with torch.no_grad():
        pred = model.test_step(batch)[0].pred_score
        inputs = model.data_preprocessor(batch, False)['inputs']
        assert inputs.shape[:2] == (1, 6)
        logits = model.cls_head(model.backbone(inputs.flatten(0, 1)))
    torch.testing.assert_close(pred, logits.sigmoid().max(0).values)
    assert batch['data_samples'][0].gt_label.shape == (157,)


def test_slowfast_config_trains_and_validates(tmp_path):
    cfg = charades_cfg(SLOWFAST_CFG, tmp_path, clip_len=16, frame_interval=1)
    runner = Runner.from_cfg(cfg)
    assert type(runner.model.backbone).__name__ == 'SlimResNet3dSlowFast'
    runner.train()
    assert runner.iter == 2
    val = runner.val()
    assert 0 < val['charades/mAP'] <= 1
