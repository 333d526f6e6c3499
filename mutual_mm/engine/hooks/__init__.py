from .mutual_learning_hook import MutualLearningHook

__all__ = ['MutualLearningHook']
