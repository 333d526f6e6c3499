from .mutual_learning_hook import MutualLearningHook, find_multi_resolution

__all__ = ['MutualLearningHook', 'find_multi_resolution']
