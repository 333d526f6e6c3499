"""Every global random state a training run draws from, as a checkpoint entry.

mmengine's resume restores weights, optimizer, schedulers, the message hub and
the sampler's position, but not the random generators: after a resume the data
augmentation (numpy, python ``random``) and the model's own randomness (dropout:
torch CPU / CUDA) draw other numbers than the uninterrupted run would. The
states are stored as plain python values and tensors, so they load under
``torch.load(weights_only=True)``.
"""
import random
from typing import Dict

import numpy as np
import torch


def capture_random_states() -> Dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = dict(python=random.getstate(),
                  numpy=(kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: Dict) -> None:
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = states['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


class RestoreBeforeBatch:
    """Wraps an iteration-based loop's data iterator: after ``skip`` batches (the
    ones mmengine's resume replays to reach the checkpoint's position) it
    restores ``states``, so the next batch draws what the uninterrupted run drew.
    """

    def __init__(self, iterator, skip: int, states: Dict):
        self.iterator, self.skip, self.states = iterator, skip, states

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0 and self.states is not None:
            restore_random_states(self.states)
            self.states = None
        self.skip -= 1
        return next(self.iterator)
