"""Top-k accuracy (in percent) of classifier predictions."""
from typing import List, Sequence

import torch
from mmengine.evaluator import BaseMetric

from ...registry import METRICS


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """Top-k accuracy in percent, from data samples with ``pred_score`` and
    ``gt_label`` (as MutualImageClassifier predicts them).

    Keys: ``accuracy/top1``, ``accuracy/top5`` (``k`` larger than the number of
    classes counts as the number of classes).
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), **kwargs):
        super().__init__(**kwargs)
        self.topk = tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'TopKAccuracy: topk={topk!r}; valid: positive ints')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = torch.as_tensor(sample['pred_score'])
            k = min(max(self.topk), score.numel())
            self.results.append(dict(
                topk=score.topk(k).indices.cpu(),
                label=int(torch.as_tensor(sample['gt_label']).reshape(-1)[0])))

    def compute_metrics(self, results: List[dict]) -> dict:
        metrics = {}
        for k in self.topk:
            hits = sum(int(r['label'] in r['topk'][:k].tolist()) for r in results)
            metrics[f'top{k}'] = 100.0 * hits / max(1, len(results))
        return metrics
