"""Small helpers shared by the tools and the tests."""
import argparse
import inspect
from typing import Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope


def load_config(config: str, scope: Optional[str] = None) -> Config:
    """Read a config (a path, or ``mmdet::``/``mmaction::`` name) and make its
    ``default_scope`` (or ``scope``) the current one, as mmengine's Runner does."""
    if '::' in config:  # a host package's own config, as `_base_` would name it
        from mmengine.hub import get_config
        cfg = get_config(config)
    else:
        cfg = Config.fromfile(config)
    init_default_scope(scope or cfg.get('default_scope', 'mmengine'))
    return cfg


def build_model(cfg: Config, drop_pretrained: bool = True):
    """Build ``cfg.model`` in the current default scope.

    ``drop_pretrained`` removes every ``init_cfg``/``pretrained`` that would fetch
    weights (torchvision://, http...), as there is no network at test time.
    """
    from mmengine.registry import MODELS
    model_cfg = cfg.model.copy()
    if drop_pretrained:
        model_cfg = without_pretrained(model_cfg)
    return MODELS.build(model_cfg)


def without_pretrained(node):
    """A copy of a config node without the ``init_cfg``/``pretrained`` entries that
    would fetch weights (torchvision://, http..., files)."""
    if isinstance(node, dict):
        out = type(node)()
        for key, value in node.items():
            if key == 'init_cfg' and _is_pretrained(value):
                continue
            if key == 'pretrained' and isinstance(value, str):
                out[key] = None
                continue
            out[key] = without_pretrained(value)
        return out
    if isinstance(node, list):
        return [without_pretrained(v) for v in node]
    return node


def _is_pretrained(init_cfg) -> bool:
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)


def parse_resolution(text: str):
    """'224' -> 224 (square); '1000x600' -> (1000, 600) (long x short)."""
    parts = text.lower().split('x')
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'resolution {text!r}: valid forms are 224 or 1000x600') from None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise argparse.ArgumentTypeError(
            f'resolution {text!r}: valid forms are 224 or 1000x600, positive sizes')
    return values[0] if len(values) == 1 else tuple(values)


def positive(kind, unit: str):
    """An argparse type: a positive ``kind`` (the error names the value and
    the unit it is read in)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f'{text!r}: valid: a positive {unit}')
        return value
    return parse


def registered_class(cfg: dict):
    """The class a config dict builds (its ``type``, looked up in the current
    default scope's registry, its parents and so mmengine's root registry, as
    a Runner builds it), or None."""
    kind = cfg.get('type')
    if isinstance(kind, type):
        return kind
    from mmengine.registry import MODELS, DefaultScope
    scope = DefaultScope.get_current_instance()
    # the root registry's get() looks only in itself and below a scope prefix
    names = [kind] if scope is None or '.' in str(kind) else [f'{scope.scope_name}.{kind}',
                                                               kind]
    for name in names:
        try:
            found = MODELS.get(name)
        except Exception:  # noqa: BLE001  (unknown scope or name)
            found = None
        if found is not None:
            return found
    return None


def constructor_default(cls, name: str):
    """Default of argument ``name`` of ``cls``'s constructor (searched along the
    MRO, for mixins whose ``__init__`` passes ``**kwargs`` on)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        param = inspect.signature(init).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise KeyError(f'{cls.__name__} has no default for {name!r}')
