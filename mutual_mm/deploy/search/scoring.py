"""Scoring one candidate subnet on the held-out split: its BN statistics
calibrated on training batches (held-out samples excluded), then the config's
test metric over the held-out samples through the test pipeline. The Runner
(model, checkpoint), the two loaders and the evaluator are built once and
reused for every candidate."""
import copy
import time
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ...engine.trained_space import TrainedSpace
from ...hosts import host_of
from ...models.slimming import unwrap_model
from ..apply_subnet import apply_subnet
from ..bn_calibration import apply_bn_stats
from ..build_table import pick_metric
from ..calibrate_checkpoint import calibrate_subnets
from ..checked_checkpoint import load_checked_checkpoint
from ..complexity import one_input, preprocessed_examples, scope_flops
from ..subnet import Subnet
from .held_out import HeldOutSplit, held_out_split, split_loader_cfg


def held_out_evaluator_cfg(evaluator_cfg):
    """The config's test metric(s), each reading its ground truth from the
    held-out samples: an ``ann_file`` (CocoMetric's: the val set's annotations)
    is dropped, so the metric converts the samples' own annotations."""
    cfg = copy.deepcopy(evaluator_cfg)
    if isinstance(cfg, list):
        metrics = cfg
    elif isinstance(cfg, dict) and cfg.get('type') == 'Evaluator':
        metrics = cfg.get('metrics', [])
    else:
        metrics = [cfg]
    for metric in (metrics if isinstance(metrics, list) else [metrics]):
        if isinstance(metric, dict) and metric.get('ann_file') is not None:
            metric['ann_file'] = None
    return cfg


class HeldOutScorer:
    """The config's model with ``checkpoint`` loaded, ready to score subnets.

    Args:
        cfg: the model's config (its train dataset gives the split, its
            test pipeline and ``test_evaluator`` the scoring).
        checkpoint: the trained checkpoint.
        held_out: held-out samples (None: :func:`held_out_split`'s default).
        num_batches: BN calibration batches per candidate.
        metric: the evaluator key scored (None: the family's main metric).

    Attributes:
        split: the :class:`HeldOutSplit`.
        space: the checkpoint's :class:`TrainedSpace` (None without a record).
        seconds: wall time of each :meth:`score` call so far.
    """

    def __init__(self, cfg: Config, checkpoint: str, held_out: Optional[int] = None,
                 num_batches: int = 3, metric: Optional[str] = None):
        cfg = copy.deepcopy(cfg)
        cfg.load_from, cfg.resume = None, False
        self.runner = Runner.from_cfg(cfg)
        self.checkpoint = load_checked_checkpoint(self.runner, checkpoint)
        self.space = TrainedSpace.from_checkpoint(self.checkpoint)
        self.split: HeldOutSplit = held_out_split(cfg, held_out)
        self.calibration_loader = Runner.build_dataloader(
            split_loader_cfg(cfg, self.split.calibration), seed=self.runner.seed)
        test_batch = (cfg.get('test_dataloader') or {}).get('batch_size')
        self.held_out_loader = Runner.build_dataloader(
            split_loader_cfg(cfg, self.split.held_out, test_batch), seed=self.runner.seed)
        self.evaluator = self.runner.build_evaluator(held_out_evaluator_cfg(cfg.test_evaluator))
        self.evaluator.dataset_meta = self.held_out_loader.dataset.metainfo
        self.model = self.runner.model
        self.host = host_of(self.model)
        self.num_batches, self.metric = num_batches, metric
        self.seconds = []
        self._trained = {k: v.clone() for k, v in self.model.state_dict().items()
                         if 'running_' in k or 'num_batches_tracked' in k}

    @torch.no_grad()
    def score(self, subnet: Subnet) -> dict:
        """``{'score', 'flops', 'metric'}`` of ``subnet``: calibrated, then
        scored on the held-out split; FLOPs of the whole model on one held-out
        input at the subnet's view."""
        start = time.perf_counter()
        stats = calibrate_subnets(self.model, self.calibration_loader, [subnet],
                                  self.num_batches, progress=False)[subnet.network.key]
        try:
            apply_bn_stats(self.model, stats['stats'])
            model = unwrap_model(self.model)
            model.eval()
            loader = self.held_out_loader
            apply_subnet(self.model, loader.dataset, subnet)
            first = None
            for batch in loader:
                first = first or batch
                outputs = model.test_step(batch)
                self.evaluator.process(data_samples=outputs, data_batch=batch)
            metrics = self.evaluator.evaluate(len(loader.dataset))
            self.metric = pick_metric(self.host, metrics, self.metric)
            flops = scope_flops(model, *one_input(model, first), 'model')
        finally:
            self.model.load_state_dict(self._trained, strict=False)
        self.seconds.append(time.perf_counter() - start)
        return dict(score=float(metrics[self.metric]), flops=float(flops),
                    metric=self.metric)

    def example(self, subnet: Subnet):
        """``(inputs, data_samples)`` of one held-out input at ``subnet``'s view,
        preprocessed, batch 1 (what latency is measured on), and its batch."""
        apply_subnet(self.model, self.held_out_loader.dataset, subnet)
        batch = next(iter(self.held_out_loader))
        return preprocessed_examples(unwrap_model(self.model), batch)[:1], batch
