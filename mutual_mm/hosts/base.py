"""What MutualNet must know about a family of host models, in one place.

The hook, BN calibration, FLOPs counting, export and the lookup table work on
whole host models (an mmdet detector, an mmaction recognizer, ...). What
differs between families (which children read the backbone's features, where
the class logits are, which forward each of them runs, the main metric) is
answered by the family's :class:`HostAdapter`, found by :func:`host_of` from the
model's class. A new family is one file in this package: a subclass registered
with ``@HOSTS.register_module()`` that names the host classes it handles.
"""
from typing import Optional, Sequence, Tuple, Type

import torch
from mmengine.registry import Registry
from torch import nn

from ..internals import run_forward
from ..models.backbones.base import owns_input_views
from ..models.slimming import batch_norms, find_slim_backbone, unwrap_model
from ..ops import convert_to_slim
from .views import BackboneViews, BatchViews, PipelineViews

HOSTS = Registry('mutual_mm host adapter')


class HostAdapter:
    """One host model seen as MutualNet sees it (subclass per family).

    Class attributes a family sets:
        host_types: the host classes the adapter handles (subclasses included;
            the adapter of the most specific one wins).
        consumer_names: children that consume the backbone's features, in the
            order looked for (the first present is made input-following).
        logits_name: the child whose forward returns the class logits (the
            teacher/student of KL distillation), None for families without.
        metric_hints: suffixes of the evaluator keys to report, best first.
        feature_part: children that ``features`` runs (BN calibration runs only
            them when every BN layer sits there).
        onnx_route: how the whole model (ONNX part ``'model'``) is exported:
            ``'torch'`` (``torch.onnx.export`` of :meth:`exported`) or
            ``'mmdeploy'`` (MMDeploy's rewritten ``predict``, post-processing
            included; see :mod:`mutual_mm.deploy.mmdeploy_export`).
        onnx_parts: the parts ``--onnx`` can write, the default first:
            ``'model'`` (the whole model) and, where it differs, ``'features'``
            (backbone + neck).
    """
    host_types: Tuple[type, ...] = ()
    consumer_names: Tuple[str, ...] = ()
    logits_name: Optional[str] = None
    metric_hints: Tuple[str, ...] = ()
    feature_part: Tuple[str, ...] = ('backbone', 'neck')
    onnx_route: str = 'torch'
    onnx_parts: Tuple[str, ...] = ('model', )

    def __init__(self, model: nn.Module):
        self.model = unwrap_model(model)
        self.backbone = find_slim_backbone(self.model)

    # ------------------------------------------------------------ structure
    @property
    def name(self) -> str:
        return type(self.model).__name__

    def consumer(self) -> Optional[nn.Module]:
        """The first child that reads the backbone's features, or None."""
        for name in self.consumer_names:
            child = getattr(self.model, name, None)
            if isinstance(child, nn.Module):
                return child
        return None

    def prepare_consumer(self) -> None:
        """Make the consumer's layers input-following (they read as many input
        channels as arrive; their output stays full), so a stock config needs
        no edit beyond the backbone swap. Idempotent."""
        consumer = self.consumer()
        if consumer is not None:
            convert_to_slim(consumer, slim_out=False)
            self.backbone.adapt_consumer(consumer)

    def logits_head(self) -> Optional[nn.Module]:
        """The child whose output is the class logits, or None."""
        return getattr(self.model, self.logits_name) if self.logits_name else None

    @property
    def default_distill(self) -> str:
        """The paper's sub-network loss for the family: KL to the full network's
        logits where there are logits, else the ground truth (detection)."""
        return 'kl' if self.logits_name else 'gt'

    def main_metric(self, metrics: dict) -> str:
        for hint in self.metric_hints:
            for key in metrics:
                if key.endswith(hint) or f'/{hint}' in key:
                    return key
        return next(iter(metrics))

    # ------------------------------------------------------------- forwards
    def features(self, inputs: torch.Tensor):
        """The feature forward (backbone + neck): FLOPs scope 'features',
        calibration when every BN layer is in it."""
        return self.model.extract_feat(inputs)

    def scores(self, inputs: torch.Tensor, data_samples=None):
        """The tensor forward up to the heads' raw outputs, no post-processing:
        FLOPs scope 'model' and latency."""
        raise NotImplementedError

    def exported(self, inputs: torch.Tensor):
        """The forward of the part :func:`~mutual_mm.deploy.export.export_subnet`
        exports (what width changes and standard layers express)."""
        return self.scores(inputs)

    def predictions(self, scores: torch.Tensor, data_samples):
        """``data_samples`` with the predictions the model's ``predict`` makes,
        from the raw scores of :meth:`exported` (what an exported graph returns):
        how a runtime outside PyTorch is evaluated with the config's metric."""
        raise NotImplementedError(
            f'{type(self).__name__}: {self.name} has no predictions from exported '
            'scores (its exported graph carries its own post-processing)')

    def deployed(self, inputs: torch.Tensor, data_samples=None):
        """The forward a deployed model runs on one input, post-processing
        included: what latency in PyTorch times."""
        return self.scores(inputs, data_samples)

    def model_flops(self, inputs: torch.Tensor, data_samples=None) -> float:
        """FLOPs of the model as deployed, on one input (FLOPs scope
        'model'): mmengine's FlopAnalyzer on :meth:`scores`."""
        return count_flops(HostForward(self, 'scores', data_samples), inputs)

    # ------------------------------------------------------ test-time knobs
    def set_proposals(self, proposals: Optional[int]) -> None:
        """Keep ``proposals`` region proposals per image at test time (None:
        the config's own). Only two-stage detectors have them."""
        self.refuse_proposals(self.name, proposals)

    @staticmethod
    def refuse_proposals(name: str, proposals: Optional[int]) -> None:
        if proposals is not None:
            raise ValueError(
                f'proposals={proposals}: {name} has no region proposals; the proposal '
                'count is a test-time setting of two-stage detectors (an RPN before RoI '
                'heads); leave it out (None)')

    @classmethod
    def set_proposals_cfg(cls, model_cfg: dict, proposals: Optional[int]) -> None:
        """The config twin of :meth:`set_proposals` (an exported subnet's config)."""
        cls.refuse_proposals(str(model_cfg.get('type')), proposals)

    def calibration_forward(self, data: dict) -> None:
        """Run a preprocessed batch so every BN layer sees its input."""
        if self.norms_only_in_features():
            self.features(data['inputs'])
        else:
            run_forward(self.model, data, mode='tensor')

    def norms_only_in_features(self) -> bool:
        """Whether every BN layer sits in the feature extractor (``feature_part``).
        Then calibration runs only that part: the same statistics at a fraction of
        the cost for detectors, whose tensor forward also runs the RoI heads on
        every proposal (about 90 % of Mask R-CNN's calibration time)."""
        parts = tuple(f'{p}.' for p in self.feature_part if hasattr(self.model, p))
        names = [name for name, _ in batch_norms(self.model)]
        return bool(parts) and all(n.startswith(parts) for n in names)

    # ---------------------------------------------------------------- views
    def training_views(self, train_dataset, multi_resolution: bool = True,
                       batch_views: Optional[dict] = None):
        """Where each cohort member's input view comes from: the backbone's own
        views (SlowFast's Slow input), views made from the loaded batch
        (``batch_views=dict(scales=..., frames=...)``, see :meth:`batch_view`)
        or the pipeline's ``MultiResolution``."""
        if owns_input_views(self.backbone):
            if batch_views is not None:
                raise ValueError(
                    f'MutualLearningHook: batch_views given, but '
                    f'{type(self.backbone).__name__} makes its own input views; '
                    'remove batch_views')
            return BackboneViews.of(self.backbone, train_dataset)
        if batch_views is not None:
            return BatchViews.of(self, train_dataset, **batch_views)
        return PipelineViews.of(train_dataset, multi_resolution)

    def check_batch_views(self, frames: Optional[Sequence[int]] = None) -> None:
        """Refuse, before training starts, views made from the batch that the
        family does not make: none when its adapter does not override
        :meth:`batch_view`; a family may also refuse ``frames`` (the
        ``batch_views`` frame counts) or a model it cannot serve."""
        if type(self).batch_view is HostAdapter.batch_view:
            self.batch_view(None, None, None)

    def batch_sizes(self, batch: dict) -> str:
        """The sizes a view sets in a preprocessed batch, as text to compare
        and show: the input shape per sample."""
        return f'inputs {tuple(batch["inputs"].shape[1:])}'

    def batch_view(self, batch: dict, scale, frames: Optional[int]) -> dict:
        """A preprocessed training batch at view (``scale``, ``frames``), made on
        its device from the full-size batch: what the pipeline would have
        delivered at that view, up to resizing an already resized image
        (:class:`~mutual_mm.hosts.views.BatchViews`). A family without it
        trains with ``MultiResolution`` in the pipeline."""
        raise NotImplementedError(
            f'{type(self).__name__}: views made from the batch are not available '
            f'for {self.name} yet; put MultiResolution in the train pipeline instead')


class HostForward(nn.Module):
    """One forward of a host (``'features'``, ``'scores'`` or ``'exported'``) as a
    one-input module: what mmengine's jit-based FlopAnalyzer traces and
    :func:`~mutual_mm.ops.export_static` exports (as mmdet's get_flops.py does
    with the tensor forward)."""

    def __init__(self, host: HostAdapter, part: str = 'scores', data_samples=None):
        super().__init__()
        if part not in ('features', 'scores', 'exported'):
            raise ValueError(f'HostForward: part={part!r}; valid: features, scores, exported')
        self.model = host.model
        self.host, self.part, self.data_samples = host, part, data_samples

    def forward(self, inputs):
        if self.part == 'scores':
            return self.host.scores(inputs, self.data_samples)
        return getattr(self.host, self.part)(inputs)


def count_flops(forward: nn.Module, *args) -> float:
    """FLOPs of one call of ``forward(*args)``, counted by mmengine's
    FlopAnalyzer (convolutions, matrix products, normalizations; as mmdet's
    get_flops.py)."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(forward, args)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return float(analyzer.total())


def host_of(model: nn.Module) -> HostAdapter:
    """The adapter of ``model``'s family (TypeError naming the known families
    if none handles it, or if its backbone is not slimmable)."""
    return host_class_of(type(unwrap_model(model)))(model)


def host_class_of(model_type: type) -> Type[HostAdapter]:
    best, best_rank = None, None
    mro = model_type.__mro__
    for adapter in HOSTS.module_dict.values():
        for host_type in adapter.host_types:
            if host_type in mro and (best_rank is None or mro.index(host_type) < best_rank):
                best, best_rank = adapter, mro.index(host_type)
    if best is None:
        known = ', '.join(sorted(t.__name__ for a in HOSTS.module_dict.values()
                                 for t in a.host_types))
        raise TypeError(f'{model_type.__name__} is not a host model mutual_mm knows '
                        f'({known}); a new family is one HostAdapter in mutual_mm/hosts/')
    return best
