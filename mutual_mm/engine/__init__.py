"""Training side of MutualNet: the cohort, the mutual step and the hook (with the
objects it delegates to); and checkpoints that a full disk cannot take from a run."""
from .cohort import Member, sample_cohort
from .finite_guard import FiniteGuard
from .hooks import MutualLearningHook, SafeCheckpointHook
from .mutual_step import MutualStep, NonFiniteLossError, kl_to_teacher, split_views
from .random_states import RandomStatePreserver
from .trained_space import TrainedSpace, TrainedSpaceRecord

__all__ = [
    'Member', 'sample_cohort', 'MutualLearningHook', 'SafeCheckpointHook', 'MutualStep',
    'kl_to_teacher', 'split_views', 'NonFiniteLossError', 'FiniteGuard',
    'RandomStatePreserver', 'TrainedSpace', 'TrainedSpaceRecord'
]
