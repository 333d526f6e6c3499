"""MutualLearningHook: turns a stock training run into MutualNet training."""
import random
from typing import Optional, Sequence

from mmengine.dist import broadcast_object_list
from mmengine.hooks import Hook

from ...ops import WidthGrid
from ...registry import HOOKS
from ..finite_guard import FiniteGuard
from ..mutual_step import DISTILL_MODES, MutualStep, NonFiniteLossError
from ..random_states import LEGACY_CHECKPOINT_KEY, RandomStatePreserver
from ..trained_space import TrainedSpace, TrainedSpaceRecord

#: ``checkpoint[CHECKPOINT_KEY]``: the cohort sampler's state
CHECKPOINT_KEY = 'cohort_sampler'
# checkpoints written before the hook was split kept the sampler's state in
# checkpoint[LEGACY_CHECKPOINT_KEY]['rng_state']


@HOOKS.register_module()
class MutualLearningHook(Hook):
    """Train every iteration as a MutualNet cohort (paper section 3.2).

    Per iteration: the full network (max width, the highest-resolution view, its
    ground-truth loss), the smallest width and ``num_random`` widths sampled
    uniformly on the width grid, each fed one view drawn uniformly from the
    :class:`~mutual_mm.datasets.MultiResolution` views (the same for the whole
    batch). Gradients of all members accumulate; the optimizer (and, through the
    loop, the LR scheduler) steps once.

    One entry in ``custom_hooks`` gives the whole behaviour, as one ``EMAHook``
    does. The hook's own job is the cohort step: it builds a
    :class:`~mutual_mm.engine.mutual_step.MutualStep` at ``before_train``,
    installs its ``train_step`` as ``runner.model``'s (the DDP wrapper's when
    there is one, since ``MMDistributedDataParallel.train_step`` never calls the
    inner model's), restores the stock step at ``after_train``, and keeps the
    cohort sampler's state in checkpoints. It delegates three jobs to small
    objects, each documenting its order relative to mmengine's hooks:

    - :class:`~mutual_mm.engine.finite_guard.FiniteGuard` (``finite_guard``):
      stops a run whose weights stop being finite, before a checkpoint is
      replaced;
    - :class:`~mutual_mm.engine.random_states.RandomStatePreserver`
      (``random_states``): every rank's random states in checkpoints, restored
      on resume, untouched by validation;
    - :class:`~mutual_mm.engine.trained_space.TrainedSpaceRecord` (``record``):
      what was trained, in each checkpoint's meta, and the refusal of a resume
      that would make it untrue.

    Priority NORMAL: at each hook point the hook runs before mmengine's
    ``CheckpointHook`` (VERY_LOW), ``LoggerHook`` (BELOW_NORMAL) and
    ``ParamSchedulerHook`` (LOW); with ``EMAHook`` (also NORMAL) the order is
    that of ``custom_hooks`` and does not matter (the EMA model is updated from,
    and swapped into, the weights this hook leaves at the full network).

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
        stage_widths (bool): the random members draw one width per backbone
            stage (the backbone's ``width_stages()``: stem and stages), each
            uniformly on the grid, as BigNAS samples non-uniform sub-networks;
            the full network and the smallest stay uniform. The checkpoint
            records it, so deployment (``tools/search_subnet.py``) knows that
            stage-width subnets were trained. Defaults to False (one width for
            every layer, the paper's).
        seed (int, optional): seed of the cohort sampler; defaults to the run's
            seed (``randomness.seed``, or the one mmengine drew for it). Rank 0's
            is used on every rank, so all ranks train the same cohort, also with
            ``randomness.diff_rank_seed=True`` (which adds the rank to the seed
            of each rank's own generators). Its state is saved in checkpoints,
            with every rank's random states, so a resumed run draws the same
            cohorts, augmentations and dropout masks as the uninterrupted one.

    A resume must keep the settings the checkpoint records (widths, views,
    distillation; ``num_random`` and ``seed`` may change): see
    :class:`~mutual_mm.engine.trained_space.TrainedSpaceRecord`.
    """

    priority = 'NORMAL'

    def __init__(self, width_range: Sequence[float] = (0.25, 1.0),
                 width_step: float = 0.05, num_random: int = 2,
                 distill: str = 'auto', multi_resolution: bool = True,
                 batch_views: Optional[dict] = None, stage_widths: bool = False,
                 seed: Optional[int] = None):
        self.grid = WidthGrid(width_range, step=width_step)
        if not isinstance(num_random, int) or num_random < 0:
            raise ValueError(f'MutualLearningHook: num_random={num_random!r}; valid: '
                             'an int >= 0')
        if distill not in DISTILL_MODES:
            raise ValueError(f'MutualLearningHook: distill={distill!r}; valid: '
                             f'{", ".join(map(repr, DISTILL_MODES))}')
        if batch_views is not None and (not isinstance(batch_views, dict) or
                                        set(batch_views) - {'scales', 'frames'}):
            raise ValueError(f'MutualLearningHook: batch_views={batch_views!r}; valid: '
                             'dict(scales=[...], frames=[...] or None)')
        self.num_random = num_random
        self.distill = distill
        self.multi_resolution = multi_resolution
        self.batch_views = batch_views
        if not isinstance(stage_widths, bool):
            raise ValueError(f'MutualLearningHook: stage_widths={stage_widths!r}; valid: '
                             'True or False')
        self.stage_widths = stage_widths
        self.seed = seed
        self.rng = random.Random()  # the cohort sampler
        self.step: Optional[MutualStep] = None  # built at before_train
        self.finite_guard = FiniteGuard()
        self.random_states = RandomStatePreserver()
        self.record = TrainedSpaceRecord()
        self._iteration = None
        self._stock_train_step = None

    # --------------------------------------------------------------- set-up
    def before_run(self, runner) -> None:
        # runner.seed is rank 0's seed plus the rank under diff_rank_seed
        seed = [self.seed if self.seed is not None else runner.seed]
        broadcast_object_list(seed)  # the same cohorts on every rank
        self.rng.seed(seed[0])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY) or checkpoint.get(LEGACY_CHECKPOINT_KEY)
        if state is not None:
            version, internal, gauss = state['rng_state']
            self.rng.setstate((version, tuple(internal), gauss))
        self.random_states.after_load_checkpoint(runner, checkpoint)
        self.record.after_load_checkpoint(runner, checkpoint)

    def before_train(self, runner) -> None:
        wrapper = runner.model
        self.step = MutualStep.of(wrapper, runner.train_dataloader.dataset, self.grid,
                                  self.num_random, self.distill, self.multi_resolution,
                                  self.batch_views, rng=self.rng,
                                  stage_widths=self.stage_widths)
        self.record.before_train(runner, self.step.trained_space())
        self.random_states.before_train(runner)
        self._stock_train_step = wrapper.__dict__.get('train_step')
        wrapper.train_step = self._train_step
        runner.logger.info(
            f'MutualLearningHook: {type(wrapper).__name__}.train_step replaced by the '
            f'mutual step ({self.step.host.name}: {type(self.step.host).__name__}); '
            f'widths {self.grid.min}..{self.grid.max} (step {self.grid.step}'
            f'{", per stage" if self.stage_widths else ""}), '
            f'{self.num_random} random, {self.num_views} views, '
            f'distill={self.resolved_distill}')

    @property
    def resolved_distill(self) -> str:
        """``'kl'`` or ``'gt'``: ``distill`` resolved for the model (after
        ``before_train``)."""
        return self.step.distill

    @property
    def num_views(self) -> int:
        """How many views the cohort members are fed (after ``before_train``)."""
        return self.step.num_views

    def trained_space(self) -> TrainedSpace:
        """The subnets this run trains (after ``before_train``)."""
        return self.step.trained_space()

    # ------------------------------------------------------------- training
    def _train_step(self, data, optim_wrapper):
        try:
            return self.step.train_step(data, optim_wrapper)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(err.member, err.terms, self._iteration,
                                     err.view) from None

    def before_train_epoch(self, runner) -> None:
        self.random_states.before_train_epoch(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iteration = runner.iter + 1  # as the logs count iterations

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self.finite_guard.after_train_iter(runner)
        self.random_states.after_train_iter(runner)

    def before_val(self, runner) -> None:
        self.random_states.before_val(runner)

    def after_val(self, runner) -> None:
        self.random_states.after_val(runner)

    def after_train(self, runner) -> None:
        wrapper = runner.model
        if self._stock_train_step is None:
            wrapper.__dict__.pop('train_step', None)
        else:
            wrapper.train_step = self._stock_train_step
        if self.step is not None:
            self.step.close()

    # ---------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self.finite_guard.before_save_checkpoint(runner, checkpoint)  # first: refuses
        checkpoint[CHECKPOINT_KEY] = dict(rng_state=self.rng.getstate())
        self.random_states.before_save_checkpoint(runner, checkpoint)
        self.record.before_save_checkpoint(runner, checkpoint)
