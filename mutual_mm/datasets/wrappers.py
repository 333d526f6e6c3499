"""Reaching the data sets inside mmengine's dataset wrappers, built or as config
dicts: one walk for both (:func:`field` reads either)."""
from typing import Iterator


def field(node, name: str, default=None):
    """``name`` of a built object (its attribute) or of a config dict (its key):
    the one way the pipeline and dataset rules read both."""
    if isinstance(node, dict):
        return node.get(name, default)
    return getattr(node, name, default)


def set_field(node, name: str, value) -> None:
    """Set ``name`` on a built object or a config dict (see :func:`field`)."""
    if isinstance(node, dict):
        node[name] = value
    else:
        setattr(node, name, value)


def nested_datasets(dataset) -> Iterator:
    """``dataset`` and every data set inside it, built or as a config dict, through
    any nesting of wrappers (RepeatDataset / ClassBalancedDataset /
    MultiImageMixDataset: ``dataset``; ConcatDataset: ``datasets``), outermost
    first. Wrappers are included: some have a pipeline of their own
    (MultiImageMixDataset)."""
    stack = [dataset if dataset is not None else {}]
    while stack:
        node = stack.pop()
        yield node
        inner = list(field(node, 'datasets') or [])
        if field(node, 'dataset') is not None:
            inner.append(field(node, 'dataset'))
        stack.extend(reversed(inner))


def pipeline_holder(dataset):
    """The first data set (wrappers unwrapped) that has a pipeline."""
    for ds in nested_datasets(dataset):
        if field(ds, 'pipeline') is not None:
            return ds
    raise ValueError(f'{type(dataset).__name__} holds no data set with a pipeline')
