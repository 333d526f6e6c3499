"""MutualLearningHook: turns a stock training run into MutualNet training."""
import random
from typing import Optional, Sequence, Tuple

import torch
from mmengine.dist import broadcast_object_list
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from ...hosts import host_of
from ...internals import defines_own_train_step
from ...models.slimming import batch_norms, unwrap_model
from ...ops import WidthGrid
from ...registry import HOOKS
from ..cohort import Member, sample_cohort
from ..mutual_step import NonFiniteLossError, mutual_train_step
from ..trained_space import META_KEY as TRAINED_META_KEY
from ..trained_space import TrainedSpace
from ..random_states import (RankStates, RestoreBeforeBatch, capture_random_states,
                             restore_random_states)

CHECKPOINT_KEY = 'mutual_learning'
DISTILL_MODES = ('auto', 'kl', 'gt')


@HOOKS.register_module()
class MutualLearningHook(Hook):
    """Train every iteration as a MutualNet cohort (paper section 3.2).

    Per iteration: the full network (max width, the highest-resolution view, its
    ground-truth loss), the smallest width and ``num_random`` widths sampled
    uniformly on the width grid, each fed one view drawn uniformly from the
    :class:`~mutual_mm.datasets.MultiResolution` views (the same for the whole
    batch). Gradients of all members accumulate; the optimizer (and, through the
    loop, the LR scheduler) steps once.

    The hook replaces ``runner.model.train_step`` (of the DDP wrapper when there
    is one, since ``MMDistributedDataParallel.train_step`` never calls the inner
    model's) for the duration of training, and restores it afterwards.

    Args:
        width_range (tuple[float, float]): (min, max) width; max is the full
            network's. Defaults to (0.25, 1.0).
        width_step (float): spacing of the width grid; random widths are drawn
            on it so the number of distinct layer shapes stays bounded (with
            ``cudnn.benchmark`` every new shape is re-benchmarked). Defaults to 0.05.
        num_random (int): random widths per iteration besides min and max.
            Defaults to 2 (the paper's).
        distill (str): sub-network loss: ``'kl'`` (KL divergence to the full
            network's detached prediction: the paper's choice for classification
            and recognition), ``'gt'`` (their own ground-truth losses: the
            paper's choice for detection) or ``'auto'`` (``'gt'`` for detectors,
            ``'kl'`` for models with a classification head). Defaults to 'auto'.
        multi_resolution (bool): whether the train pipeline must contain
            MultiResolution. False trains widths only (US-Net) at the pipeline's
            resolution. Defaults to True.
        batch_views (dict, optional): make the views from the loaded batch
            instead of the pipeline: ``dict(scales=[...], frames=[...])`` (as
            MultiResolution's; the first the size and frames the stock pipeline
            delivers). The pipeline stays the stock single-resolution one (no
            MultiResolution); each member's input is resized (and its frames
            taken) on the model's device from the preprocessed batch, only for
            the views the iteration uses (detectors: keep-ratio scales as
            ``Resize`` takes them, boxes and masks rescaled; no frames).
            Defaults to None (the pipeline's MultiResolution views).
        seed (int, optional): seed of the cohort sampler; defaults to the run's
            seed (``randomness.seed``, or the one mmengine drew for it). Rank 0's
            is used on every rank, so all ranks train the same cohort, also with
            ``randomness.diff_rank_seed=True`` (which adds the rank to the seed
            of each rank's own generators). Its state is saved in checkpoints,
            with every rank's python, numpy and torch (CPU, CUDA) random states
            (see :class:`~mutual_mm.engine.random_states.RankStates`), so a
            resumed run draws the same cohorts, augmentations and dropout masks
            as the uninterrupted one (with ``num_workers=0``; worker processes
            seed their own generators, and with the same number of processes).
    """

    priority = 'NORMAL'

    def __init__(self, width_range: Sequence[float] = (0.25, 1.0),
                 width_step: float = 0.05, num_random: int = 2,
                 distill: str = 'auto', multi_resolution: bool = True,
                 batch_views: Optional[dict] = None, seed: Optional[int] = None):
        self.grid = WidthGrid(width_range, step=width_step)
        if not isinstance(num_random, int) or num_random < 0:
            raise ValueError(f'MutualLearningHook: num_random={num_random!r}; valid: '
                             'an int >= 0')
        if distill not in DISTILL_MODES:
            raise ValueError(f'MutualLearningHook: distill={distill!r}; valid: '
                             f'{", ".join(map(repr, DISTILL_MODES))}')
        self.num_random = num_random
        self.distill = distill
        self.multi_resolution = multi_resolution
        if batch_views is not None and (not isinstance(batch_views, dict) or
                                        set(batch_views) - {'scales', 'frames'}):
            raise ValueError(f'MutualLearningHook: batch_views={batch_views!r}; valid: '
                             'dict(scales=[...], frames=[...] or None)')
        self.batch_views = batch_views
        self.seed = seed
        self.rng = random.Random()
        self.num_views = 1
        self._logits = None
        self._iteration = None
        self._pending_random_states = None
        self._states_before_val = None
        self._rank_states = RankStates()
        self._handles = []
        self._stock_train_step = None
        self._running_stat_norms = []

    # --------------------------------------------------------------- set-up
    def before_run(self, runner) -> None:
        # runner.seed is rank 0's seed plus the rank under diff_rank_seed
        seed = [self.seed if self.seed is not None else runner.seed]
        broadcast_object_list(seed)  # the same cohorts on every rank
        self.rng.seed(seed[0])

    def before_train(self, runner) -> None:
        wrapper = runner.model
        model = unwrap_model(wrapper)
        try:
            self.host = host_of(model)
        except TypeError as err:
            raise TypeError(f'MutualLearningHook cannot slim this model: {err}') \
                from None
        if defines_own_train_step(model):
            raise TypeError(
                f'MutualLearningHook: {type(model).__name__} defines its own train_step, '
                'which the mutual step would bypass; train it without the hook or move '
                'what its train_step adds into its loss')
        self.backbone = self.host.backbone
        self.host.prepare_consumer()
        self._running_stat_norms = [norm for _, norm in batch_norms(model)]
        self.views = self.host.training_views(runner.train_dataloader.dataset,
                                              self.multi_resolution, self.batch_views)
        self.num_views = len(self.views.views)
        self._setup_distillation()
        if self._pending_random_states is not None:
            self._restore_random_states_on_resume(runner)
        self._stock_train_step = wrapper.__dict__.get('train_step')
        wrapper.train_step = self._train_step_of(wrapper)
        runner.logger.info(
            f'MutualLearningHook: {type(wrapper).__name__}.train_step replaced by the '
            f'mutual step ({self.host.name}: {type(self.host).__name__}); widths '
            f'{self.grid.widths[0]}..{self.grid.max} (step {self.grid.step}), '
            f'{self.num_random} random, {self.num_views} views, '
            f'distill={self.resolved_distill}')

    def _setup_distillation(self) -> None:
        head = self.host.logits_head()
        mode = self.host.default_distill if self.distill == 'auto' else self.distill
        if mode == 'kl' and head is None:
            raise ValueError(
                f'MutualLearningHook: distill="kl" needs a classification head (class '
                f'logits); {self.host.name} ({type(self.host).__name__}) has none: use '
                'distill="gt"')
        self.resolved_distill = mode
        if mode == 'kl':
            self._handles.append(head.register_forward_hook(self._keep_logits))

    def _keep_logits(self, module, args, output) -> None:
        self._logits = output

    def _captured_logits(self):
        logits, self._logits = self._logits, None
        if logits is None:
            raise RuntimeError('MutualLearningHook: the classification head did not '
                               'run during the loss forward')
        return logits

    def _restore_random_states_on_resume(self, runner) -> None:
        """Resumed: the random states go back to the checkpoint's right before
        the first new batch is drawn. An iteration-based loop first replays the
        data loader up to the checkpoint (augmentations drawing from the same
        generators), so they are restored after the replay; an epoch-based one
        resumes at an epoch start (see ``before_train_epoch``)."""
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = RestoreBeforeBatch(
                loop.dataloader_iterator, runner.iter, self._pending_random_states)
            self._pending_random_states = None

    def before_train_epoch(self, runner) -> None:
        if self._pending_random_states is not None:
            restore_random_states(self._pending_random_states)
            self._pending_random_states = None

    # Validation during training must not move the training's random streams
    # (building its data iterator draws from torch's generator): otherwise a run
    # resumed from a checkpoint written right before a validation would draw
    # other numbers than the uninterrupted one.
    def before_val(self, runner) -> None:
        self._states_before_val = capture_random_states()
        self._rank_states.share(self._states_before_val)  # for the best checkpoint

    def after_val(self, runner) -> None:
        if self._states_before_val is not None:
            restore_random_states(self._states_before_val)
            self._states_before_val = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iteration = runner.iter + 1  # as the logs count iterations

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        # The loss check keeps non-finite losses out of the weights, but a step
        # can still overflow a BN running variance (AdamW at a huge lr) with a
        # finite loss. Stop here, before mmengine's CheckpointHook (lower
        # priority, runs after this hook) deletes the oldest kept checkpoint to
        # make room for the new one: every kept checkpoint stays intact.
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
        # CheckpointHook (lower priority) may save next, on rank 0 only
        self._rank_states.share()

    def _train_step_of(self, wrapper):

        def train_step(data, optim_wrapper):
            cohort = sample_cohort(self.grid, self.num_views, self.num_random,
                                   self.rng)
            try:
                log_vars = mutual_train_step(
                    wrapper, data, optim_wrapper, cohort, self._configure,
                    capture_logits=(self._captured_logits
                                    if self.resolved_distill == 'kl' else None),
                    make_view=self.views.make)
                self._log_resolutions(log_vars, cohort)
                return log_vars
            except NonFiniteLossError as err:
                raise NonFiniteLossError(err.member, err.terms, self._iteration,
                                         self.views.describe(err.member.view)) from None
            finally:
                # validation and checkpoints see the full network
                self._configure(Member('full', self.grid.max, 0))

        return train_step

    def _configure(self, member: Member) -> int:
        """Put the model in ``member``'s subnet; the data view to feed."""
        self.backbone.set_width(member.width)
        # Only the full network updates BN running statistics: a sub-network's
        # batch statistics (fewer input channels, another resolution) would mix
        # into the full network's, and validating the full network during
        # training would read that mixture. Sub-networks get their own
        # statistics from BN calibration after training (paper §3.4).
        full = member.name == 'full'
        for norm in self._running_stat_norms:
            norm.track_running_stats = full
        return self.views.feed(member.view)

    def _log_resolutions(self, log_vars, cohort) -> None:
        """Each member's input size and frame count, beside its width, so the
        logs say which subnet produced which loss."""
        for member in cohort:
            log_vars.update(self.views.log_vars(member.name, member.view))

    def after_train(self, runner) -> None:
        for norm in self._running_stat_norms:
            norm.track_running_stats = True
        wrapper = runner.model
        if self._stock_train_step is None:
            wrapper.__dict__.pop('train_step', None)
        else:
            wrapper.train_step = self._stock_train_step
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ---------------------------------------------------- checkpoint / resume
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', {})
        floating = [(k, v) for k, v in state.items()
                    if torch.is_tensor(v) and v.is_floating_point()]
        count, names = non_finite(floating)
        if count:
            # raised before mmengine writes the file (latest or best): a
            # diverged model never replaces a good checkpoint
            raise FloatingPointError(
                f'MutualLearningHook: refusing to save a checkpoint at iteration '
                f'{runner.iter}: {count} of {len(state)} tensors are not finite ({names})')
        # a checkpoint written during validation (the best one) carries the
        # training's streams as they were before the validation started
        states = self._states_before_val or capture_random_states()
        checkpoint[CHECKPOINT_KEY] = dict(
            rng_state=self.rng.getstate(),
            random_states=self._rank_states.of_every_rank(states))
        if hasattr(self, 'views'):  # what deployment may use: see trained_space
            checkpoint.setdefault('meta', {})[TRAINED_META_KEY] = \
                self.trained_space().as_meta()

    def trained_space(self) -> TrainedSpace:
        """The subnets this run trains (after ``before_train``)."""
        scales, frames = self.views.trained_sizes()
        return TrainedSpace(width_range=[self.grid.min, self.grid.max],
                            width_step=self.grid.step, scales=scales, frames=frames,
                            distill=self.resolved_distill)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is not None:
            version, internal, gauss = state['rng_state']
            self.rng.setstate((version, tuple(internal), gauss))
            # Restored at the first iteration, not here: on resume the loop first
            # replays the data loader up to the checkpoint's iteration, and the
            # replayed augmentations draw from the same generators.
            saved = state.get('random_states')
            self._pending_random_states = (
                None if saved is None else RankStates.own(saved, runner.logger))



def non_finite(named_tensors) -> Tuple[int, str]:
    """How many of ``named_tensors`` hold a NaN or an infinity, and their first
    five names (', ...' after them if there are more)."""
    bad = [n for n, t in named_tensors if not bool(torch.isfinite(t).all())]
    return len(bad), ', '.join(bad[:5]) + (', ...' if len(bad) > 5 else '')
