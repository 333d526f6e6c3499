from .mutual_learning_hook import MutualLearningHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['MutualLearningHook', 'SafeCheckpointHook']
