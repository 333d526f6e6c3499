"""Reaching the data sets inside mmengine's dataset wrappers, built or as
config dicts."""
from typing import Iterator


def nested_datasets(dataset) -> Iterator:
    """``dataset`` and every data set inside it, through any nesting of
    wrappers (RepeatDataset / ClassBalancedDataset / MultiImageMixDataset:
    ``.dataset``; ConcatDataset: ``.datasets``), outermost first. Wrappers are
    included: some have a pipeline of their own (MultiImageMixDataset)."""
    stack = [dataset]
    while stack:
        ds = stack.pop()
        yield ds
        inner = list(getattr(ds, 'datasets', None) or [])
        if getattr(ds, 'dataset', None) is not None:
            inner.append(ds.dataset)
        stack.extend(reversed(inner))


def nested_dataset_cfgs(dataset_cfg) -> Iterator[dict]:
    """The config-dict twin of :func:`nested_datasets`: a dataset config and
    every dataset config it wraps (``dataset``, ``datasets``), outermost first."""
    stack = [dataset_cfg or {}]
    while stack:
        node = stack.pop()
        yield node
        inner = list(node.get('datasets', []) or [])
        if node.get('dataset'):
            inner.append(node['dataset'])
        stack.extend(reversed(inner))


def pipeline_holder(dataset):
    """The first data set (wrappers unwrapped) that has a pipeline."""
    for ds in nested_datasets(dataset):
        if getattr(ds, 'pipeline', None) is not None:
            return ds
    raise ValueError(f'{type(dataset).__name__} holds no data set with a pipeline')
