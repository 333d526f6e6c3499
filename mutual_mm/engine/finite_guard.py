"""Keeps non-finite weights out of checkpoints (the loss check is the step's:
:class:`~mutual_mm.engine.mutual_step.NonFiniteLossError`)."""
from typing import Tuple

import torch

from ..models.slimming import unwrap_model


class FiniteGuard:
    """Stops training when the model holds a NaN or an infinity, and refuses to
    save such a checkpoint.

    The step's loss check keeps non-finite losses out of the weights, but a step
    can still overflow a BN running variance (AdamW at a huge lr) with a finite
    loss. So after every iteration every floating parameter and buffer is
    checked (one host sync), and every checkpoint's state dict before it is
    written.

    Order: called by ``MutualLearningHook`` (priority NORMAL) at its
    ``after_train_iter``, before mmengine's ``CheckpointHook`` (VERY_LOW) deletes
    the oldest kept checkpoint to make room for a new one, so every kept
    checkpoint stays finite; and first in its ``before_save_checkpoint``, which
    mmengine runs before writing the file (latest or best), so a diverged model
    never replaces a good checkpoint.
    """

    def after_train_iter(self, runner) -> None:
        """Raises:
            FloatingPointError: naming how many tensors are not finite (the first
                five by name) and the iteration.
        """
        model = unwrap_model(runner.model)
        named = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers())
                 if t.is_floating_point()]
        if named and not bool(torch.stack([torch.isfinite(t).all() for _, t in named]).all()):
            count, names = non_finite(named)
            raise FloatingPointError(
                f'MutualLearningHook: the model is not finite after iteration '
                f'{runner.iter + 1}: {count} of {len(named)} tensors ({names}); training '
                'stopped before any checkpoint was replaced (the kept ones are finite). '
                'Lower the learning rate or clip gradients (optim_wrapper.clip_grad)')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Raises:
            FloatingPointError: the checkpoint's state dict is not finite.
        """
        state = checkpoint.get('state_dict', {})
        floating = [(k, v) for k, v in state.items()
                    if torch.is_tensor(v) and v.is_floating_point()]
        count, names = non_finite(floating)
        if count:
            raise FloatingPointError(
                f'MutualLearningHook: refusing to save a checkpoint at iteration '
                f'{runner.iter}: {count} of {len(state)} tensors are not finite ({names})')


def non_finite(named_tensors) -> Tuple[int, str]:
    """How many of ``named_tensors`` hold a NaN or an infinity, and their first
    five names (', ...' after them if there are more)."""
    bad = [n for n, t in named_tensors if not bool(torch.isfinite(t).all())]
    return len(bad), ', '.join(bad[:5]) + (', ...' if len(bad) > 5 else '')
