"""Model-level helpers: convert a dense model to slim layers, set its width,
export a static (plain torch) model at one width."""
from __future__ import annotations

import contextlib
import copy
from typing import Collection, Dict, Iterator, List, Tuple

import torch
from torch import nn

from .base import SlimMixin
from .conv import SlimConv2d, SlimConv3d
from .linear import SlimLinear
from .norm import SlimBatchNorm2d, SlimBatchNorm3d

# Exact dense types that convert_to_slim replaces.  Subclasses (e.g.
# nn.SyncBatchNorm is NOT a BatchNorm2d, but third-party Conv2d subclasses
# are) are left alone because their forward may do something we would drop.
_DENSE_TO_SLIM = {
    nn.Conv2d: SlimConv2d,
    nn.Conv3d: SlimConv3d,
    nn.BatchNorm2d: SlimBatchNorm2d,
    nn.BatchNorm3d: SlimBatchNorm3d,
    nn.Linear: SlimLinear,
}



def register_dense_equivalent(dense_cls: type, slim_cls: type) -> None:
    """Let :func:`convert_to_slim` replace instances of ``dense_cls`` (exactly that
    type) by ``slim_cls``. For subclasses of a torch layer whose forward computes
    the same thing as torch's (e.g. mmcv's ``Conv3d`` wrapper, which only adds
    handling of empty batches); the slim layer does not keep such extras."""
    torch_cls = slim_cls.__bases__[-1]  # SlimConv2d(_SlimConvNd, nn.Conv2d)
    if not issubclass(dense_cls, torch_cls):
        raise TypeError(f'{dense_cls.__name__} is not a {torch_cls.__name__}')
    _DENSE_TO_SLIM[dense_cls] = slim_cls


# Layers with channel-shaped parameters that convert_to_slim cannot slim;
# with strict=True finding one (not skipped) is an error.
_UNSLIMMABLE = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._NormBase,  # also SyncBatchNorm and InstanceNorm
    nn.GroupNorm,
    nn.LayerNorm,
    nn.Linear,
)


def _iter_slim(module: nn.Module) -> Iterator[Tuple[str, SlimMixin]]:
    for name, m in module.named_modules():
        if isinstance(m, SlimMixin):
            yield name, m


def _normalize_skip(skip) -> set:
    if isinstance(skip, str):
        return {skip}
    return set(skip)


def convert_to_slim(module: nn.Module, *, skip: Collection[str] = (),
                    slim_out: bool = True, strict: bool = False) -> nn.Module:
    """Replace dense layers of ``module`` by slim layers, in place.

    Every child whose type is exactly ``nn.Conv2d``, ``nn.Conv3d``,
    ``nn.BatchNorm2d``, ``nn.BatchNorm3d`` or ``nn.Linear`` is replaced by
    its slim version built with ``from_dense`` (sharing the parameter and
    buffer objects, so the state dict and an existing optimizer stay valid).
    Other layers -- including ``nn.SyncBatchNorm``, ``GroupNorm``,
    ``LayerNorm`` and subclasses of the dense classes -- are left unchanged
    unless ``strict`` is set.  Convert SyncBatchNorm to BatchNorm (or skip
    it) before calling this.

    Args:
        module: the model.  If ``module`` itself is a convertible layer the
            slim layer is returned (it cannot be replaced in place).
        skip: qualified names (as in ``named_modules()``) of layers to leave
            dense; naming a container leaves every layer under it dense.
            Names that do not exist raise ``ValueError`` (catches typos).
        slim_out: ``slim_out`` of the converted convs.  Linear layers always
            get ``slim_out=False`` (classifiers keep all their outputs).
        strict: raise ``TypeError`` for a conv / norm / linear layer that is
            not converted, not skipped and not already slim.

    Returns:
        ``module`` (or the slim layer replacing it, see above).
    """
    skip = _normalize_skip(skip)
    all_names = {name for name, _ in module.named_modules(remove_duplicate=False)}
    unknown = sorted(skip - all_names)
    if unknown:
        raise ValueError(f'convert_to_slim: skip names {unknown} are not modules of '
                         f'{type(module).__name__}')

    def skipped(qualname: str) -> bool:
        return any(qualname == s or qualname.startswith(s + '.') or s == ''
                   for s in skip)

    memo: Dict[int, nn.Module] = {}  # keeps layers shared by several parents shared

    def convert_one(child: nn.Module, qualname: str):
        slim_cls = _DENSE_TO_SLIM.get(type(child))
        if slim_cls is None:
            if strict and isinstance(child, _UNSLIMMABLE) and not isinstance(child, SlimMixin):
                raise TypeError(
                    f'convert_to_slim: cannot slim {qualname or "<root>"} of type '
                    f'{type(child).__name__}; convert it to a supported type or add '
                    f'it to skip')
            return None
        if id(child) not in memo:
            if slim_cls is SlimLinear:
                kwargs = {'slim_out': False}
            elif slim_cls in (SlimConv2d, SlimConv3d):
                kwargs = {'slim_out': slim_out}
            else:
                kwargs = {}
            memo[id(child)] = slim_cls.from_dense(child, **kwargs)
        return memo[id(child)]

    def visit(parent: nn.Module, prefix: str) -> None:
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            qualname = f'{prefix}.{name}' if prefix else name
            if skipped(qualname):
                continue
            new = convert_one(child, qualname)
            if new is not None:
                setattr(parent, name, new)
            else:
                visit(child, qualname)

    if not skipped(''):
        root = convert_one(module, '')
        if root is not None:
            return root
        visit(module, '')
    return module


def _check_width(width: float) -> float:
    w = float(width)
    if not 0 < w <= 1.0:
        raise ValueError(f'width must be in (0, 1], got {width}')
    return w


def set_width(module: nn.Module, width: float) -> int:
    """Set ``width`` on every slim layer in ``module``.

    Returns the number of slim layers updated.

    Raises:
        ValueError: ``width`` is not in (0, 1], or ``module`` has no slim
            layer (usually a forgotten :func:`convert_to_slim`).
    """
    w = _check_width(width)
    n = 0
    for _, m in _iter_slim(module):
        m.width = w
        n += 1
    if n == 0:
        raise ValueError(f'set_width: {type(module).__name__} has no slim layers')
    return n


def get_width(module: nn.Module) -> float:
    """The width shared by all slim layers of ``module``.

    Raises:
        ValueError: ``module`` has no slim layer, or its layers disagree.
    """
    widths = {m.width for _, m in _iter_slim(module)}
    if not widths:
        raise ValueError(f'get_width: {type(module).__name__} has no slim layers')
    if len(widths) > 1:
        raise ValueError(f'get_width: the slim layers of {type(module).__name__} have '
                         f'different widths {sorted(widths)}')
    return widths.pop()


@contextlib.contextmanager
def width_context(module: nn.Module, width: float):
    """Run a block at ``width``, then restore each slim layer's previous
    width (also when the block raises).  Yields ``module``."""
    _check_width(width)
    previous: List[Tuple[SlimMixin, float]] = [(m, m.width) for _, m in _iter_slim(module)]
    set_width(module, width)
    try:
        yield module
    finally:
        for m, w in previous:
            m.width = w


def export_static(module: nn.Module, *example_inputs, **example_kwargs) -> nn.Module:
    """Plain torch copy of ``module`` at its current width.

    Deep-copies ``module``, runs ``copy(*example_inputs, **example_kwargs)``
    once in eval mode under ``torch.no_grad()`` while recording the input
    channel count of every slim layer, and replaces each slim layer that ran
    by ``layer.to_static(recorded_in_channels)``.  The train/eval mode of
    every module of the copy is restored.  ``module`` is not modified.

    Slim layers that did not run in the example forward (e.g. unused
    ``out_indices`` branches or a head the example call skips) are left
    as slim layers.  A slim layer that ran several times with different
    input channel counts raises ``ValueError`` (no single static layer can
    replace it).
    """
    model = copy.deepcopy(module)
    modes = [(m, m.training) for m in model.modules()]
    recorded: Dict[int, int] = {}
    names: Dict[int, str] = {}
    handles = []

    def make_hook(name: str):
        def hook(layer, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            c = layer.input_channels_of(x)
            prev = recorded.setdefault(id(layer), c)
            if prev != c:
                raise ValueError(f'export_static: slim layer {name or "<root>"} ran with '
                                 f'{prev} and {c} input channels')
        return hook

    for name, m in _iter_slim(model):
        names[id(m)] = name
        handles.append(m.register_forward_pre_hook(make_hook(name), with_kwargs=True))
    try:
        model.eval()
        with torch.no_grad():
            model(*example_inputs, **example_kwargs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training

    statics: Dict[int, nn.Module] = {}

    def static_of(layer: nn.Module):
        if not isinstance(layer, SlimMixin) or id(layer) not in recorded:
            return None
        if id(layer) not in statics:
            statics[id(layer)] = layer.to_static(recorded[id(layer)])
        return statics[id(layer)]

    root = static_of(model)
    if root is not None:
        return root
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            new = None if child is None else static_of(child)
            if new is not None:
                setattr(parent, name, new)
    return model
