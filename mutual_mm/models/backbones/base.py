"""What every slimmable backbone of mutual_mm shares."""
from typing import Dict, List, Optional, Sequence, Tuple

from torch import nn

from mmcv.cnn.bricks import wrappers as mmcv_wrappers

from ...ops import (SlimConv2d, SlimConv3d, SlimLinear, SlimMixin, Width, active_channels,
                    convert_to_slim, get_width, is_stage_widths, normalize_width,
                    register_dense_equivalent, set_width, width_str)

# mmcv's Conv2d/Conv3d/Linear (built by `build_conv_layer` in mmaction's 3D
# ResNets) only add empty-batch handling to torch's forward: slim them as torch's.
register_dense_equivalent(mmcv_wrappers.Conv2d, SlimConv2d)
register_dense_equivalent(mmcv_wrappers.Conv3d, SlimConv3d)
register_dense_equivalent(mmcv_wrappers.Linear, SlimLinear)


class SlimBackboneMixin:
    """Mixed into a host backbone class (``class SlimResNet(SlimBackboneMixin,
    ResNet)``) to make it width-slimmable without changing its constructor, its
    forward or its state-dict keys.

    The host builds its dense layers as usual; :meth:`make_slim` then swaps
    every ``Conv``/``BatchNorm``/``Linear`` for its slim subclass from
    :mod:`mutual_mm.ops` (sharing the very same parameters). At width 1.0 each
    slim layer takes a fast path that calls the dense forward, so the backbone
    *is* the stock one there; at width ``w`` each layer uses the first
    ``active_channels(C, w)`` output channels (the paper's ``W[0:w]``).

    A subclass states :attr:`full_out_channels` (channels of each output at
    width 1.0), from which :meth:`out_channels_at` follows, because the last
    layer of every output stage rounds with the one rule of
    :func:`mutual_mm.ops.active_channels`.
    """

    #: layers whose output channels never shrink (qualified names), e.g. none
    _unslimmed_outputs: Sequence[str] = ()

    def make_slim(self) -> None:
        """Swap every dense layer for its slim twin (same parameters); a subclass
        calls it at the end of its ``__init__``, once its layers exist."""
        convert_to_slim(self, strict=True)
        for name in self._unslimmed_outputs:
            self.get_submodule(name).slim_out = False

    # ---------------------------------------------------------------- width
    def width_stages(self) -> Dict[str, Sequence[str]]:
        """The backbone's stages, in forward order: ``{stage name: the
        qualified names of its modules}``; what stage widths (one width per
        stage) address. A family defines them so that every residual sum lies
        inside one stage (its two branches round with the same width), and every
        layer whose output channels slim belongs to exactly one stage; layers
        reading another stage's output (a stage's first conv, FPN's lateral
        convs, SlowFast's fused Slow input) follow their input. Default: none
        (stage widths are refused, naming the backbone)."""
        return {}

    @property
    def width(self) -> Width:
        """The active width: a float when every stage runs at the same width,
        else the stage widths (a tuple in :meth:`width_stages` order)."""
        stages = self._stage_layers() if self.width_stages() else None
        if not stages:
            return get_width(self)
        return normalize_width([layers[0].width for layers in stages.values()])

    def set_width(self, width: Width) -> None:
        """Set the active width: one multiplier in (0, 1] for every slim layer,
        or one per stage of :meth:`width_stages` (stage widths).

        Raises:
            ValueError: stage widths for a backbone without stages, or not one
                per stage (the message names the stages).
        """
        width = normalize_width(width)
        if not is_stage_widths(width):
            set_width(self, width)
            return
        stages = self._stage_layers()
        if len(width) != len(stages):
            raise ValueError(
                f'{type(self).__name__}: {len(width)} stage widths {width_str(width)} '
                f'for its {len(stages)} stages ({", ".join(stages)}); valid: one width '
                'per stage, in that order, or one width for all')
        for layers, stage_width in zip(stages.values(), width):
            for layer in layers:
                set_width(layer, stage_width)

    def _stage_layers(self) -> Dict[str, List[SlimMixin]]:
        """The slim layers of each stage, checked once: every layer whose output
        channels slim lies in exactly one stage."""
        cached = self.__dict__.get('_stage_layers_cache')
        if cached is not None:
            return cached
        names = self.width_stages()
        if not names:
            raise ValueError(
                f'{type(self).__name__} defines no stages, so it runs at one width '
                'for every layer only (a float width); stage widths need its '
                'width_stages()')
        stages, owner = {}, {}
        for stage, modules in names.items():
            layers = []
            for module_name in modules:
                for name, layer in self.get_submodule(module_name).named_modules(
                        prefix=module_name):
                    if isinstance(layer, SlimMixin):
                        if name in owner:
                            raise RuntimeError(f'{type(self).__name__}.width_stages: '
                                               f'{name} is in stages {owner[name]} and '
                                               f'{stage}')
                        owner[name] = stage
                        layers.append(layer)
            stages[stage] = layers
        loose = [name for name, layer in self.named_modules()
                 if isinstance(layer, SlimMixin) and layer.slim_out and name not in owner]
        if loose:
            raise RuntimeError(f'{type(self).__name__}.width_stages: slimming layers '
                               f'{loose[:5]} are in no stage')
        self.__dict__['_stage_layers_cache'] = stages
        return stages

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        """Channels of each output (in ``out_indices`` order) at width 1.0."""
        raise NotImplementedError

    def adapt_consumer(self, consumer: nn.Module) -> None:
        """Called once with the module consuming the backbone's features (after its
        layers were made input-following), for layouts that are not a prefix."""

    def out_channels_at(self, width: float) -> Tuple[int, ...]:
        """Channels of each output at a uniform ``width``: what the downstream
        layers receive and the FLOPs counter sees."""
        return tuple(active_channels(c, width) for c in self.full_out_channels)


class ViewOwningBackbone(SlimBackboneMixin):
    """A slim backbone that makes its own input views, because the data must stay
    whole (SlowFast: the Fast pathway reads the full clip, so only the Slow
    pathway's input is resized and subsampled, inside the backbone). The hook, BN
    calibration and deployment reach such a backbone only through these methods
    (:func:`owns_input_views` tells it apart): the data pipeline is left alone.

    Attributes:
        input_views (list[tuple[float, float]]): the training views, as factors
            of the full input (size, frames); view 0 is the full input.
    """

    input_views: List[Tuple[float, float]]

    def set_input_view(self, index: int) -> None:
        """Training: run on input view ``index`` of :attr:`input_views`."""
        raise NotImplementedError

    def set_subnet_input(self, scale: Optional[int], frames: Optional[int]) -> None:
        """Deployment: run at a subnet's ``scale`` (short side) and ``frames``
        (None: the whole input in that dimension)."""
        raise NotImplementedError

    @classmethod
    def subnet_input_cfg(cls, backbone_cfg: dict, scale: Optional[int],
                         frames: Optional[int]) -> None:
        """Write a subnet's input into this backbone's config, in place (how an
        exported subnet keeps it)."""
        raise NotImplementedError

    @classmethod
    def view_input_sizes(cls, backbone_cfg: dict, full_size: Optional[int],
                         clip_len: Optional[int]) -> Tuple[Optional[list], Optional[list]]:
        """(sizes, frames) of the input views a config of this backbone trains, in
        absolute terms, for inputs of ``full_size`` px and ``clip_len`` frames."""
        raise NotImplementedError


def owns_input_views(backbone) -> bool:
    """Whether a backbone (or backbone class) makes its own input views."""
    cls = backbone if isinstance(backbone, type) else type(backbone)
    return issubclass(cls, ViewOwningBackbone)


def residual_stages(backbone: nn.Module, stem: List[str], layers: Sequence[str],
                    adds_its_input=None) -> Dict[str, List[str]]:
    """``{'stem': stem, layer: [layer], ...}`` for a backbone made of a stem and
    stages of residual blocks: what most families' :meth:`~SlimBackboneMixin.width_stages`
    are. A stage whose first block adds its input (the previous stage's output)
    to its own joins the previous stage (``'stem+layer1'`` in ResNet-18/34), so
    that both sides of the sum run at one width.

    Args:
        adds_its_input: ``f(stage module) -> bool``; default: a ResNet stage
            whose first block has no ``downsample`` (an identity shortcut).
    """
    if adds_its_input is None:
        def adds_its_input(stage):
            return stage[0].downsample is None
    stages = {'stem': list(stem)}
    for name in layers:
        if adds_its_input(backbone.get_submodule(name)):
            previous, modules = stages.popitem()
            stages[f'{previous}+{name}'] = modules + [name]
        else:
            stages[name] = [name]
    return stages


def last_conv_out_channels(module: nn.Module) -> int:
    """Output channels of the last convolution in ``module`` (a stage's output)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def is_slim_backbone(module: nn.Module) -> bool:
    return isinstance(module, SlimBackboneMixin)
