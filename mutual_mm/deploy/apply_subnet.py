"""Putting a model, and the data it reads, at one subnet.

Where a subnet's ``scale``/``frames`` act depends on the backbone: for most
models on the data (the test pipeline's last ``Resize`` and ``SampleFrames``,
:func:`~mutual_mm.datasets.pipeline_views.set_pipeline_view`); for a backbone
that makes its own input views (a ``ViewOwningBackbone``: SlowFast, whose Fast
pathway must read the whole clip) on the backbone. :func:`apply_subnet` does it
on built objects, :func:`apply_subnet_to_cfg` on a config.
"""
from ..datasets.pipeline_views import set_pipeline_view
from ..hosts import HostAdapter, host_class_of, host_of, set_model_width
from ..models.backbones.base import SlimBackboneMixin, owns_input_views
from ..models.slimming import find_slim_backbone, unwrap_model
from ..utils import registered_class
from .subnet import Subnet


def apply_subnet(model, dataset, subnet: Subnet) -> None:
    """Put ``model`` (and ``dataset``'s pipeline) at ``subnet``. ``dataset`` may
    be None for a backbone that owns its input views."""
    set_model_width(model, subnet.width)
    if isinstance(unwrap_model(model), SlimBackboneMixin):  # a bare backbone
        HostAdapter.refuse_proposals(type(model).__name__, subnet.proposals)
    else:
        host_of(model).set_proposals(subnet.proposals)
    backbone = find_slim_backbone(model)
    if owns_input_views(backbone):
        backbone.set_subnet_input(subnet.scale, subnet.frames)
    else:
        set_pipeline_view(dataset, subnet.scale, subnet.frames)


def view_owning_backbone(backbone_cfg: dict):
    """The class a backbone config builds if it makes its own views, else None."""
    cls = registered_class(backbone_cfg)
    return cls if isinstance(cls, type) and owns_input_views(cls) else None


def apply_subnet_to_cfg(cfg, subnet: Subnet) -> None:
    """The config twin of :func:`apply_subnet` for scale/frames (the width is
    the exported model's own): the backbone's config when it owns its views
    (SlowFast: ``slow_input``), else the val/test pipelines; proposals in the
    detector's ``test_cfg``."""
    host_class_of(registered_class(cfg.model)).set_proposals_cfg(cfg.model, subnet.proposals)
    backbone = view_owning_backbone(cfg.model.backbone)
    if backbone is not None:
        backbone.subnet_input_cfg(cfg.model.backbone, subnet.scale, subnet.frames)
        return
    for split in ('val_dataloader', 'test_dataloader'):
        if cfg.get(split) is not None:
            set_pipeline_view(cfg[split]['dataset'], subnet.scale, subnet.frames)
