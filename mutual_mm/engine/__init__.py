"""Training side of MutualNet: the cohort, the mutual step and the hook; and
checkpoints that a full disk cannot take from a run."""
from .cohort import Member, sample_cohort
from .hooks import MutualLearningHook, SafeCheckpointHook
from .mutual_step import (NonFiniteLossError, kl_to_teacher, mutual_train_step,
                          split_views)

__all__ = [
    'Member', 'sample_cohort', 'MutualLearningHook', 'SafeCheckpointHook',
    'kl_to_teacher', 'mutual_train_step', 'split_views', 'NonFiniteLossError'
]
