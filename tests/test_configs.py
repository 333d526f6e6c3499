"""Every provided COCO and Kinetics config trains for 2 iterations through a real
mmengine Runner on small generated data in the task's real format, then
validates with its own metric; data that is missing fails naming the path."""
import copy
import math
import os.path as osp

import pytest
from mmengine.runner import Runner

from mutual_mm.utils import load_config

from .helpers import on_small_data

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COCO = ['mask-rcnn_slim-r50_fpn_mutualnet-2x_coco.py',
        'mask-rcnn_slim-vgg16_fpn_mutualnet-2x_coco.py',
        'mask-rcnn_slim-mbv2_fpn_mutualnet-2x_coco.py']
KINETICS = ['slowonly_slim-r50_mutualnet-8x8x1-256e_kinetics400-rgb.py',
            'slowfast_slim-r50_mutualnet-4x16x1-256e_kinetics400-rgb.py',
            'x3d-m_slim_mutualnet-16x5x1-300e_kinetics400-rgb.py',
            'tsn_slim-r50_mutualnet-1x1x3-100e_kinetics400-rgb.py']
CASES = ([('mask_rcnn', name, 'coco') for name in COCO]
         + [('kinetics', name, 'kinetics') for name in KINETICS])


def config_path(folder, name):
    return osp.join(ROOT, 'configs', folder, name)


@pytest.mark.parametrize('folder,name,task', CASES, ids=[c[1].split('_')[0] + '-' + c[1].split('_')[1] for c in CASES])
def test_config_trains_and_validates(tmp_path, folder, name, task):
    cfg = on_small_data(load_config(config_path(folder, name)), tmp_path / 'work',
                        tmp_path / 'data', task)
    hook = cfg.custom_hooks[0]
    assert hook.type == 'MutualLearningHook'
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    scalars = runner.message_hub.log_scalars
    # the hook ran its cohort: the full network, the min width, 2 random widths
    for member in ('full', 'min', 'rand0', 'rand1'):
        assert f'train/{member}.width' in scalars, sorted(scalars)
    assert scalars['train/min.width'].current() == pytest.approx(hook.width_range[0])
    assert scalars['train/full.width'].current() == 1.0
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth')
    keys = (('coco/bbox_mAP', 'coco/segm_mAP') if task == 'coco'
            else ('acc/top1', 'acc/top5'))
    for key in keys:
        value = scalars[f'val/{key}'].current()
        assert math.isfinite(value) and 0 <= value <= 1, (key, value)


@pytest.mark.parametrize('folder,name', [('mask_rcnn', COCO[0]), ('kinetics', KINETICS[0])])
def test_missing_data_names_the_path(tmp_path, folder, name):
    cfg = load_config(config_path(folder, name))
    cfg.work_dir = str(tmp_path)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.pop('pretrained', None)
    dataset = cfg.train_dataloader.dataset
    missing = osp.join(dataset.get('data_root') or '', dataset.ann_file)
    with pytest.raises(FileNotFoundError, match=osp.basename(missing)):
        Runner.from_cfg(cfg).train()
