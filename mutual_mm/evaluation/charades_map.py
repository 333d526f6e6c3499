"""Charades mean average precision (the PySlowFast / Charades protocol)."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmaction.evaluation import AccMetric, mean_average_precision

from ..registry import METRICS


@METRICS.register_module()
class CharadesMAP(AccMetric):
    """Mean over classes of the average precision of the video-level scores
    (``charades/mAP``), as the Charades evaluation and PySlowFast's ``get_map``.

    Per class, AP is the non-interpolated area under the precision-recall
    step curve, ``sum_n (R_n - R_{n-1}) P_n`` (sklearn's
    ``average_precision_score``); classes without a positive in the evaluated
    set are left out of the mean. The computation is mmaction2's
    ``mean_average_precision``; this class only checks the inputs are
    multi-label and names the result. AP only ranks the scores of each class,
    so logits, sigmoid probabilities and their max over clips all give the
    same value.

    Needs ``gt_label`` multi-hot of the same length as ``pred_score``, as
    :class:`~mutual_mm.datasets.CharadesDataset` gives.

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'``, where results are gathered
            in distributed evaluation. Defaults to ``'cpu'``.
        prefix (str, optional): metric name prefix. Defaults to ``'charades'``.
    """
    default_prefix: Optional[str] = 'charades'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(metric_list='mean_average_precision', collect_device=collect_device,
                         metric_options={}, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            label, score = sample['gt_label'], sample['pred_score']
            if label.dim() != 1 or label.shape != score.shape:
                raise ValueError(
                    f'CharadesMAP needs multi-hot gt_label of the shape of pred_score '
                    f'{tuple(score.shape)}, got {tuple(label.shape)} (a single-label '
                    'dataset? use CharadesDataset, or AccMetric)')
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        preds = [r['pred'] for r in results]
        labels = [r['label'] for r in results]
        with np.errstate(invalid='ignore', divide='ignore'):  # classes with no positive
            value = mean_average_precision(preds, labels)
        return {'mAP': float(value)}
