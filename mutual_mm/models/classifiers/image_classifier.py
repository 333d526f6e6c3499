"""MutualImageClassifier: slim backbone + global pooling + linear head.

Why our own and not mmpretrain's ``ImageClassifier``: mmpretrain 1.2.0 declares
mmcv < 2.4 / mmengine < 1.0 (so the pins agree) but imports ``torchvision`` at
import time without declaring it, and no torchvision wheel matches the pinned CPU
torch 2.13 build (the PyPI wheel's compiled ops fail to register:
``operator torchvision::nms does not exist``; an unpinned one pulls another torch).
The classifier therefore lives here, with the contract MutualLearningHook and the
deploy tools rely on:

* ``model.backbone`` is a slim backbone; its state-dict keys are ``backbone.*``,
  so a detection config loads the pre-trained backbone with
  ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``;
* ``model.head`` is a module whose forward returns the class logits; it runs in
  every ``mode='loss'`` forward, so the hook's forward hook on ``head`` captures
  the logits for KL distillation (``distill='auto'`` resolves to ``'kl'``);
* ``_forward(inputs, data_samples=None)`` is the tensor-mode forward (logits),
  what BN calibration runs and the FLOPs counter traces.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel, BaseModule
from mmengine.structures import BaseDataElement
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class MutualLinearClsHead(BaseModule):
    """Global average pooling of the backbone's LAST output, dropout, one linear
    layer (the MobileNet / ResNet / US-Net classifier).

    Under MutualLearningHook the linear layer becomes input-following (it reads
    as many features as the slimmed backbone delivers) and keeps all classes.

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the backbone's last output at width 1.0.
        dropout (float): dropout before the linear layer. Defaults to 0.
        init_cfg: defaults to normal(std=0.01) weights and zero bias.
    """

    def __init__(self, num_classes: int, in_channels: int, dropout: float = 0.0,
                 init_cfg=dict(type='Normal', layer='Linear', std=0.01)):
        super().__init__(init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(f'MutualLinearClsHead: num_classes={num_classes!r}; '
                             'valid: a positive int')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        x = feats[-1] if isinstance(feats, (tuple, list)) else feats
        return self.fc(self.dropout(self.pool(x).flatten(1)))


@MODELS.register_module()
class MutualImageClassifier(BaseModel):
    """Image classifier built around a slim backbone.

    Data samples are :class:`mmengine.structures.BaseDataElement` with a
    ``gt_label`` field (a 1-element LongTensor), as
    :class:`~mutual_mm.datasets.PackClsInputs` packs them; ``predict`` adds
    ``pred_score`` (softmax) and ``pred_label``, what
    :class:`~mutual_mm.datasets.TopKAccuracy` reads.

    Args:
        backbone (dict): a slim backbone config; its outputs are a tuple of
            feature maps and the head pools the last one, so set ``out_indices``
            to the last stage (e.g. ``(4,)`` for SlimMobileNetV1/SlimVGG,
            ``(3,)`` for SlimResNet, ``(7,)`` for SlimMobileNetV2).
        head (dict): the head, e.g. ``MutualLinearClsHead``.
        data_preprocessor (dict, optional): defaults to mmengine's
            ``ImgDataPreprocessor`` with the ImageNet mean/std and BGR->RGB.
        label_smoothing (float): of the cross-entropy loss. Defaults to 0.
        init_cfg: mmengine init config of the whole model.
    """

    def __init__(self, backbone: dict, head: dict,
                 data_preprocessor: Optional[dict] = None,
                 label_smoothing: float = 0.0, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImgDataPreprocessor',
                                     mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.label_smoothing = label_smoothing

    def extract_feat(self, inputs: torch.Tensor):
        return self.backbone(inputs)

    def _forward(self, inputs: torch.Tensor, data_samples=None) -> torch.Tensor:
        """The class logits (tensor mode)."""
        return self.head(self.extract_feat(inputs))

    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self._forward(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'MutualImageClassifier: invalid mode {mode!r}; valid: '
                           "'tensor', 'loss', 'predict'")

    @staticmethod
    def gt_labels(data_samples: Sequence[BaseDataElement], device) -> torch.Tensor:
        if not data_samples or any('gt_label' not in s for s in data_samples):
            raise ValueError('MutualImageClassifier: the loss needs data samples with '
                             'gt_label (packed by PackClsInputs)')
        return torch.cat([torch.as_tensor(s.gt_label).reshape(-1)
                          for s in data_samples]).to(device=device, dtype=torch.long)

    def loss(self, inputs: torch.Tensor, data_samples: List[BaseDataElement]) -> dict:
        """Cross-entropy of the logits (the head's forward, so the hook sees it)."""
        logits = self._forward(inputs)
        labels = self.gt_labels(data_samples, logits.device)
        return dict(loss_cls=F.cross_entropy(logits, labels,
                                             label_smoothing=self.label_smoothing))

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        return self.predictions(self._forward(inputs), data_samples)

    @staticmethod
    def predictions(logits: torch.Tensor,
                    data_samples: Optional[List[BaseDataElement]] = None
                    ) -> List[BaseDataElement]:
        """``data_samples`` (new ones if None) with ``pred_score`` (softmax of
        ``logits``) and ``pred_label``: :meth:`predict` after the forward."""
        scores = F.softmax(logits, dim=1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(scores.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score.detach()
            sample.pred_label = score.argmax().reshape(1).detach()
        return data_samples
