"""Every global random state a training run draws from, as a checkpoint entry.

mmengine's resume restores weights, optimizer, schedulers, the message hub and
the sampler's position, but not the random generators: after a resume the data
augmentation (numpy, python ``random``) and the model's own randomness (dropout:
torch CPU / CUDA) draw other numbers than the uninterrupted run would. The
states are stored as plain python values and tensors, so they load under
``torch.load(weights_only=True)``.

Every process has its own states (``randomness.diff_rank_seed=True`` seeds each
rank differently; even with one seed the ranks' augmentations draw different
amounts), so the checkpoint holds one entry per rank: see :class:`RankStates`.
:class:`RandomStatePreserver` saves and restores them for ``MutualLearningHook``.
"""
import random
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.runner import IterBasedTrainLoop

#: ``checkpoint[CHECKPOINT_KEY]``: every rank's states (a list indexed by rank)
CHECKPOINT_KEY = 'random_states'
#: where checkpoints written before the hook was split kept them:
#: ``checkpoint['mutual_learning']['random_states']``
LEGACY_CHECKPOINT_KEY = 'mutual_learning'


def capture_random_states() -> Dict:
    """This process's python, numpy, torch CPU and (when initialised) CUDA
    random states."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = dict(python=random.getstate(),
                  numpy=(kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: Dict) -> None:
    """Set this process's generators to ``states`` (from
    :func:`capture_random_states`)."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = states['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    # mmengine's resume loads the checkpoint onto the training device; the
    # generators take their states as CPU byte tensors only
    torch.set_rng_state(states['torch'].cpu())
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states['cuda']])


class RankStates:
    """Every rank's random states, for the checkpoint that rank 0 writes alone.

    mmengine's ``Runner.save_checkpoint`` is ``master_only``: the
    ``before_save_checkpoint`` hooks run on rank 0 only, where the other ranks'
    states cannot be read. So every rank hands its states over (an
    ``all_gather_object``, a collective: every rank calls :meth:`share` at the
    same points) wherever a checkpoint may follow: at the end of each training
    iteration and at the start of a validation. A checkpoint gets the states of
    the last such point; in between, nothing must draw from the generators
    (mmengine's own hooks between the sharing hook and ``CheckpointHook`` do not).
    One process shares nothing: its checkpoint takes its states as they are.

    In the checkpoint the states are a list indexed by rank. On resume every rank
    restores its own entry (:meth:`own`). A checkpoint written by another number
    of processes is resumed with a warning naming both numbers, as mmengine
    resumes it (the run continues, but cannot draw what the uninterrupted one
    would): ranks present in both restore their own states, the others keep the
    ones ``randomness`` seeded. An older checkpoint holds one dict (the states of
    the process that saved it, rank 0): it counts as written by one process.
    """

    def __init__(self):
        self._shared: Optional[List[Dict]] = None

    def share(self, states: Optional[Dict] = None) -> None:
        """Collect every rank's states (this rank's: ``states``, or captured
        now); call on every rank, at the same points. A no-op in one process."""
        if get_world_size() > 1:
            self._shared = all_gather_object(
                capture_random_states() if states is None else states)

    def of_every_rank(self, states: Dict) -> List[Dict]:
        """The checkpoint entry, indexed by rank; ``states`` are the saving
        process's own, used when it runs alone (or before any rank shared: a
        resume then warns that the other ranks' states are missing)."""
        if get_world_size() > 1 and self._shared is not None:
            return self._shared
        return [states]

    @staticmethod
    def own(entry: Union[Dict, List[Dict]], logger) -> Optional[Dict]:
        """This rank's states in a checkpoint ``entry`` (None: it has none); a
        warning on ``logger`` when the entry comes from another number of
        processes."""
        older = isinstance(entry, dict)
        saved = [entry] if older else list(entry)
        rank, world_size = get_rank(), get_world_size()
        if len(saved) != world_size:
            written = ('an older checkpoint: the random states of the process that '
                       'saved it only' if older else
                       f'the random states of {len(saved)} processes')
            logger.warning(
                f'MutualLearningHook: the checkpoint holds {written}, and this run has '
                f'{world_size} process(es): ranks 0..{min(len(saved), world_size) - 1} '
                'restore the states saved for their rank, the others keep the ones '
                '`randomness` seeded; the resumed run will not draw the numbers the '
                'uninterrupted one would')
        return saved[rank] if rank < len(saved) else None


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


class RandomStatePreserver:
    """Saves every rank's random states in checkpoints and restores them on
    resume, so a resumed run draws the same augmentations and dropout masks as
    the uninterrupted one (with ``num_workers=0``: worker processes seed their
    own generators; and with the same number of processes). Validation during
    training does not move the training's streams.

    Order: called by ``MutualLearningHook`` (priority NORMAL) at its
    ``after_load_checkpoint`` (the states are kept, not restored: mmengine's
    resume then replays the data loader, whose augmentations draw from these
    generators), ``before_train`` (an iteration-based loop: restored after the
    replay, right before the first new batch), ``before_train_epoch`` (an
    epoch-based one resumes at an epoch start), ``before_val`` / ``after_val``,
    ``after_train_iter`` (every rank shares its states; between NORMAL and
    mmengine's ``CheckpointHook``, VERY_LOW, nothing draws: ``LoggerHook`` and
    ``ParamSchedulerHook`` do not) and ``before_save_checkpoint`` (rank 0 writes
    every rank's states).
    """

    def __init__(self):
        self._pending: Optional[Dict] = None
        self._before_val: Optional[Dict] = None
        self._rank_states = RankStates()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:  # an older checkpoint
            saved = (checkpoint.get(LEGACY_CHECKPOINT_KEY) or {}).get('random_states')
        self._pending = None if saved is None else RankStates.own(saved, runner.logger)

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if self._pending is not None and isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = RestoreBeforeBatch(
                loop.dataloader_iterator, runner.iter, self._pending)
            self._pending = None

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None

    # Validation during training must not move the training's random streams
    # (building its data iterator draws from torch's generator): otherwise a run
    # resumed from a checkpoint written right before a validation would draw
    # other numbers than the uninterrupted one.
    def before_val(self, runner) -> None:
        self._before_val = capture_random_states()
        self._rank_states.share(self._before_val)  # for the best checkpoint

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_random_states(self._before_val)
            self._before_val = None

    def after_train_iter(self, runner) -> None:
        self._rank_states.share()  # CheckpointHook may save next, on rank 0 only

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # a checkpoint written during validation (the best one) carries the
        # training's streams as they were before the validation started
        states = self._before_val or capture_random_states()
        checkpoint[CHECKPOINT_KEY] = self._rank_states.of_every_rank(states)
