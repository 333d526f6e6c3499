"""The held-out split the search scores on: the last N samples of the config's
training dataset (never its val/test set, which stays for the final table),
and the training samples BN calibration may draw (the others)."""
import copy
import logging
from dataclasses import dataclass
from typing import List, Optional

from mmengine.logging import print_log

#: the default held-out size: this fraction of the training set, at most
#: :data:`MAX_HELD_OUT` samples
HELD_OUT_FRACTION, MAX_HELD_OUT = 0.1, 5000


@dataclass
class HeldOutSplit:
    """Indices into the config's training dataset built without ``indices``.

    Attributes:
        total: the dataset's samples.
        held_out: the last ``len(held_out)`` of them: what candidates are scored on.
        calibration: the samples the config trains on, less the held-out ones:
            what BN calibration draws from.
        seen_in_training: how many held-out samples the config trains on.
    """
    total: int
    held_out: List[int]
    calibration: List[int]
    seen_in_training: int

    def as_dict(self) -> dict:
        return dict(total=self.total, held_out=len(self.held_out),
                    first_held_out=self.held_out[0], calibration=len(self.calibration),
                    seen_in_training=self.seen_in_training)


def default_held_out(total: int) -> int:
    return max(1, min(MAX_HELD_OUT, round(HELD_OUT_FRACTION * total)))


def train_dataset_cfg(cfg) -> dict:
    """The config's training dataset (a plain dataset: ``indices`` must act on it).

    Raises:
        ValueError: a dataset wrapper (its type named).
    """
    dataset = cfg.train_dataloader.dataset
    if 'dataset' in dataset or 'datasets' in dataset:
        raise ValueError(f'the search holds out samples of the training dataset through '
                         f'its `indices`; {dataset.get("type")!r} wraps other datasets: '
                         'give a config whose train_dataloader.dataset is a plain '
                         'dataset (mmengine BaseDataset)')
    return dataset


def held_out_split(cfg, held_out: Optional[int] = None, warn: bool = True) -> HeldOutSplit:
    """The last ``held_out`` samples of the training dataset (default:
    :func:`default_held_out`) and the calibration samples. Builds the dataset
    once without a pipeline to count it (in the registry scope the caller's
    Runner set). Warns (once, naming the count) when the config trains on
    held-out samples: their score is then not an unseen one.

    Raises:
        ValueError: ``held_out`` not in 1 .. total - 1 (the valid range named).
    """
    from mmengine.registry import DATASETS
    dataset_cfg = copy.deepcopy(train_dataset_cfg(cfg))
    train_indices = dataset_cfg.pop('indices', None)
    dataset_cfg['pipeline'] = []
    total = len(DATASETS.build(dataset_cfg))
    n = default_held_out(total) if held_out is None else held_out
    if not isinstance(n, int) or not 1 <= n < total:
        raise ValueError(f'--held-out {held_out!r}: the training dataset has {total} '
                         f'samples; valid: 1 .. {total - 1}')
    held = list(range(total - n, total))
    if train_indices is None:
        trained = range(total)
    elif isinstance(train_indices, int):
        trained = range(min(train_indices, total))
    else:
        trained = list(train_indices)
    held_set = set(held)
    calibration = [i for i in trained if i not in held_set]
    seen = sum(1 for i in trained if i in held_set)
    if not calibration:
        raise ValueError(f'--held-out {n}: no training sample is left for BN calibration '
                         f'(the config trains on {len(trained)} of {total})')
    if seen and warn:
        print_log(f'the held-out split (the last {n} of {total} training samples) was '
                  f'seen in training: the config\'s train_dataloader uses {seen} of them '
                  '(restrict it with dataset.indices to score on unseen samples)',
                  logger='current', level=logging.WARNING)
    return HeldOutSplit(total, held, calibration, seen)


def split_loader_cfg(cfg, indices: List[int], batch_size: Optional[int] = None) -> dict:
    """Training samples ``indices`` through the test pipeline, in order
    (:func:`calibration_dataloader_cfg`); workers not persistent, so a subnet's
    view set on the dataset reaches every pass."""
    from ..calibrate_checkpoint import calibration_dataloader_cfg
    loader = calibration_dataloader_cfg(cfg, batch_size)
    loader['dataset']['indices'] = list(indices)
    loader['persistent_workers'] = False
    return loader
