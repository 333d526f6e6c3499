"""Training side of MutualNet: the cohort, the mutual step and the hook."""
from .cohort import Member, sample_cohort
from .hooks import MutualLearningHook
from .mutual_step import (NonFiniteLossError, kl_to_teacher, mutual_train_step,
                          split_views)

__all__ = [
    'Member', 'sample_cohort', 'MutualLearningHook',
    'kl_to_teacher', 'mutual_train_step', 'split_views', 'NonFiniteLossError'
]
