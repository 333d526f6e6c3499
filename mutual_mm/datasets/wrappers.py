"""Reaching the data sets inside mmengine's dataset wrappers."""
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
