"""Stock mmdet/mmaction configs build and train-forward with mutual_mm imported."""
import pytest
import torch

import mutual_mm  # noqa: F401
from mutual_mm.utils import build_model, load_config

from .helpers import action_packed_inputs, ava_packed_inputs, det_packed_inputs, loss_of

MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
SLOWFAST = ('mmaction::recognition/slowfast/'
            'slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.py')
X3D = 'mmaction::recognition/x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py'
AVA = ('mmaction::detection/slowonly/'
       'slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py')


def _check_losses(losses, total, expected_keys):
    assert expected_keys <= set(losses), sorted(losses)
    assert torch.isfinite(total)
    total.backward()


def test_mask_rcnn_r50_fpn():
    torch.manual_seed(0)
    model = build_model(load_config(MASK_RCNN))
    assert type(model).__name__ == 'MaskRCNN'
    losses, total = loss_of(model.train(), det_packed_inputs())
    _check_losses(losses, total, {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'})
    assert model.backbone.conv1.weight.grad is None  # frozen stem (frozen_stages=1)
    assert model.backbone.layer4[0].conv1.weight.grad is not None


@pytest.mark.parametrize('config, frames, backbone', [
    (SLOWFAST, 32, 'ResNet3dSlowFast'),
    (X3D, 16, 'X3D'),
])
def test_kinetics_recognizers(config, frames, backbone):
    torch.manual_seed(0)
    model = build_model(load_config(config))
    assert type(model.backbone).__name__ == backbone
    losses, total = loss_of(model.train(), action_packed_inputs(frames=frames))
    _check_losses(losses, total, {'loss_cls'})
    with torch.no_grad():
        scores = model(**model.data_preprocessor(action_packed_inputs(frames), False),
                       mode='predict')
    assert scores[0].pred_score.shape == (400, )


def test_ava_slowonly_detector():
    torch.manual_seed(0)
    cfg = load_config(AVA)
    model = build_model(cfg)
    assert type(model).__name__ == 'FastRCNN'
    assert type(model.backbone).__name__ == 'ResNet3dSlowOnly'
    losses, total = loss_of(model.train(), ava_packed_inputs())
    _check_losses(losses, total, {'loss_action_cls'})
