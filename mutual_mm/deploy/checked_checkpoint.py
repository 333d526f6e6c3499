"""Loading a checkpoint for deployment: readable, and the config's own.

mmengine's ``Runner.load_checkpoint`` loads non-strictly and only logs what did
not load: a detection checkpoint given with a video config loads nothing and
leaves a random model that calibrates, tabulates and exports with exit 0. The
deploy tools (calibration, the lookup table, export) load through
:func:`load_checked_checkpoint` instead, which refuses such a pair with the
counts and examples of the keys that did not load.
"""
from typing import Dict, List

from mmengine.model import is_model_wrapper

from ..fileio import check_readable_checkpoint

# BN's batch counters: unused at test time, absent from some converted files
IGNORED_SUFFIXES = ('num_batches_tracked', )


def load_checked_checkpoint(runner, checkpoint: str) -> dict:
    """``runner.load_checkpoint(checkpoint)`` (its ``after_load_checkpoint``
    hooks included) after checking the file is complete, then a check that
    every parameter and buffer of the model loaded.

    Allowance: BN ``num_batches_tracked`` counters may be missing or extra.

    Raises:
        FileNotFoundError, ValueError: an unreadable file (named).
        ValueError: keys of the model missing from the checkpoint, keys of the
            checkpoint the model lacks, or shapes that differ (counts and
            examples of each: the checkpoint was trained with another config).
    """
    check_readable_checkpoint(checkpoint)
    loaded = runner.load_checkpoint(checkpoint, map_location='cpu')
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    problems = checkpoint_mismatch(model.state_dict(), loaded.get('state_dict', loaded))
    if problems:
        raise ValueError(
            f'checkpoint {checkpoint} does not fit the config\'s model '
            f'({type(model).__name__}): {"; ".join(problems)}. Was it trained with '
            'another config? Give the config it was trained with (its work_dir holds a '
            'copy)')
    return loaded


def checkpoint_mismatch(model_state: Dict, checkpoint_state: Dict) -> List[str]:
    """What does not match between a model's state dict and a checkpoint's
    (``module.`` prefixes of wrapped models removed), each with a count and
    up to three examples; empty when everything loads."""
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in checkpoint_state.items()}

    def counted(keys):
        return [k for k in keys if not k.endswith(IGNORED_SUFFIXES)]

    missing = counted(k for k in model_state if k not in state)
    unexpected = counted(k for k in state if k not in model_state)
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}'
              for k, v in model_state.items()
              if k in state and hasattr(state[k], 'shape') and state[k].shape != v.shape]
    problems = []
    for what, keys in ((f'of the model\'s {len(model_state)} keys missing from the '
                        'checkpoint', missing),
                       (f'of the checkpoint\'s {len(state)} keys not in the model',
                        unexpected),
                       ('keys with another shape (checkpoint vs model)', shapes)):
        if keys:
            problems.append(f'{len(keys)} {what} (e.g. {", ".join(keys[:3])})')
    return problems
