"""One MutualNet training iteration, driven through the (possibly wrapped) model.

:class:`MutualStep` is the step's one public interface: ``MutualLearningHook``
installs its ``train_step`` as the model's, and tests and benchmarks call the
same method with a cohort of their choosing.
"""
import contextlib
import random
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hosts import host_of
from ..internals import backward_uncounted, defines_own_train_step, run_forward
from ..models.slimming import batch_norms, unwrap_model
from ..ops import WidthGrid, mean_width, width_str
from .cohort import Member, sample_cohort
from .trained_space import TrainedSpace

DISTILL_MODES = ('auto', 'kl', 'gt')


def split_views(data: dict, num_views: int) -> List[dict]:
    """A collated MultiResolution batch (every value a list over views) as one
    batch per view, each in the form the stock data preprocessor takes."""
    if num_views == 1 and not _is_view_batch(data):
        return [data]
    # pseudo_collate transposes each sample's per-view list into per-view
    # tuples; the stock preprocessors expect the list a plain batch has.
    return [{key: list(value[k]) if isinstance(value[k], tuple) else value[k]
             for key, value in data.items()} for k in range(num_views)]


def _is_view_batch(data: dict) -> bool:
    inputs = data.get('inputs')
    # a plain batch holds one tensor per sample; a view batch one sequence per view
    return (isinstance(inputs, list) and len(inputs) > 0
            and isinstance(inputs[0], (list, tuple)))


def kl_to_teacher(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the softmax predictions (paper eq. 4);
    ``teacher`` is detached by the caller."""
    return F.kl_div(F.log_softmax(student, dim=1), F.softmax(teacher, dim=1),
                    reduction='batchmean')


class NonFiniteLossError(FloatingPointError):
    """A cohort member's loss is NaN or infinite; raised before the optimizer
    steps (the cohort's gradients are discarded), so the weights are still those
    of the previous iteration.

    Attributes:
        member: the member whose loss it is (name, width, view index).
        terms: ``{loss term: value}`` of its non-finite terms.
        iteration: the training iteration (1-based, as logged), when known.
        view: the member's input view in words, when known.
    """

    def __init__(self, member: Member, terms: Dict[str, float],
                 iteration: Optional[int] = None, view: Optional[str] = None):
        self.member, self.terms, self.iteration, self.view = member, terms, iteration, view
        where = f'at iteration {iteration}: ' if iteration is not None else ''
        view = view or f'view {member.view}'
        super().__init__(
            f'training stopped {where}non-finite loss of cohort member '
            f'{member.name!r} (width {width_str(member.width)}, {view}): '
            + ', '.join(f'{k} = {v}' for k, v in terms.items())
            + '. The optimizer did not step for this iteration, so the weights and '
            'every checkpoint written so far are finite. Usual causes: a learning '
            'rate too high for the summed losses of the cohort, no warm-up, no '
            'gradient clipping (optim_wrapper.clip_grad).')


def check_finite(checked: List[tuple], optim_wrapper) -> None:
    """Raise :class:`NonFiniteLossError` for the first member of ``checked``
    (``(member, loss, member_logs)``) whose loss is not finite, after
    discarding the cohort's gradients. One host sync for the whole cohort,
    before the optimizer steps: a check per member would stall a GPU between
    members."""
    losses = torch.stack([loss.detach().float().reshape(()) for _, loss, _ in checked])
    if bool(torch.isfinite(losses).all()):
        return
    optim_wrapper.zero_grad()
    for member, loss, member_logs in checked:
        if not bool(torch.isfinite(loss)):
            terms = {k: float(v.detach().sum()) for k, v in member_logs.items()
                     if k != 'loss' and torch.is_tensor(v)
                     and not bool(torch.isfinite(v).all())}
            raise NonFiniteLossError(member, terms or {'loss': float(loss)})


def backward_without_step(optim_wrapper, loss: torch.Tensor) -> None:
    """Backward of one cohort member through the optim wrapper's own ``backward``
    (so AMP loss scaling applies) with the wrapper's loss scaling for gradient
    accumulation, without counting it as an iteration: the cohort is ONE
    iteration, whose last member goes through ``update_params``."""
    backward_uncounted(optim_wrapper, optim_wrapper.scale_loss(loss))


def _train_cohort(wrapper: nn.Module, data: dict, optim_wrapper,
                  cohort: List[Member], configure: Callable[[Member], int],
                  capture_logits: Optional[Callable[[], torch.Tensor]] = None,
                  make_view: Optional[Callable[[dict, int], dict]] = None
                  ) -> Dict[str, torch.Tensor]:
    """Train ``cohort`` on ``data``; gradients accumulate, the optimizer steps once.
    One plain function for one process and for DDP (see ``wrapper``);
    :meth:`MutualStep.train_step` supplies its callbacks.

    Args:
        wrapper: ``runner.model``: the model or its DDP wrapper. Forward passes go
            through it, so DDP prepares its reducer; all members but the last
            run under ``no_sync()``, so exactly one gradient all-reduce happens.
        data: the collated batch, one entry per view (see :func:`split_views`).
        optim_wrapper: the runner's optim wrapper (AMP, clipping and
            ``accumulative_counts`` are its own business).
        cohort: members, the full network first.
        configure: puts the model in a member's subnet (width, and the
            backbone's own input view for SlowFast) and returns the index of the
            data view the member is fed.
        capture_logits: if given, distillation is on: returns the classification
            logits of the last forward; sub-networks then learn the KL divergence
            to the full network's detached logits instead of their own losses.
        make_view: if given, ``make_view(batch, member.view)`` makes a member's
            input from the preprocessed batch it is fed (views made on the
            device from the loaded batch). Each data view is preprocessed once.

    Returns:
        log variables: every member's losses prefixed by its name, its width and
        view, and ``loss`` (the sum of the members' losses).

    Raises:
        NonFiniteLossError: naming the first member whose loss is NaN or
            infinite, before the optimizer steps (the cohort's gradients are
            discarded).
    """
    model = unwrap_model(wrapper)
    views = split_views(data, len(data['inputs']) if _is_view_batch(data) else 1)
    can_skip_sync = wrapper is not model and hasattr(wrapper, 'no_sync')
    log_vars: Dict[str, torch.Tensor] = OrderedDict()
    total = 0.0
    teacher = None
    checked = []
    preprocessed: Dict[int, dict] = {}
    for k, member in enumerate(cohort):
        last = k == len(cohort) - 1
        sync = contextlib.nullcontext() if last or not can_skip_sync \
            else wrapper.no_sync()
        with sync:
            with optim_wrapper.optim_context(wrapper):
                index = configure(member)
                if index not in preprocessed:
                    preprocessed[index] = model.data_preprocessor(views[index], True)
                batch = preprocessed[index]
                if make_view is not None:
                    batch = make_view(batch, member.view)
                losses = run_forward(wrapper, batch, mode='loss')
                if capture_logits is not None:
                    logits = capture_logits()
                    if k == 0:
                        teacher = logits.detach()
                    else:
                        losses = {'loss_kl': kl_to_teacher(logits, teacher)}
            loss, member_logs = model.parse_losses(losses)
            checked.append((member, loss, member_logs))
            if last:
                check_finite(checked, optim_wrapper)
                optim_wrapper.update_params(loss)
            else:
                backward_without_step(optim_wrapper, loss)
        total = total + member_logs['loss'].detach()
        for key, value in member_logs.items():
            log_vars[f'{member.name}.{key}'] = value.detach()
        # one number per member (stage widths: their mean), as loggers plot it
        log_vars[f'{member.name}.width'] = torch.tensor(mean_width(member.width))
        log_vars[f'{member.name}.view'] = torch.tensor(float(member.view))
    log_vars['loss'] = total
    return log_vars


class MutualStep:
    """One MutualNet training iteration of one model (paper section 3.2): the
    full network (max width, view 0, its ground-truth loss), the smallest width
    and random widths on the grid, each fed one view; their gradients
    accumulate and the optimizer steps once.

    Build it with :meth:`of`; :meth:`train_step` has the signature of mmengine's
    ``BaseModel.train_step`` (plus an optional cohort), so ``MutualLearningHook``
    installs it as the model's step, and a test or a benchmark calls it with the
    cohort it wants. Between steps the model is at its full network.

    Args:
        wrapper (nn.Module): ``runner.model``: the model or its DDP wrapper.
        grid (WidthGrid): the widths cohorts are drawn on.
        view_source: where each member's input view comes from
            (``host.training_views``: pipeline, batch or backbone views).
        distill (str): ``'kl'`` or ``'gt'`` (resolved: see :meth:`of`).
        num_random (int): random widths per cohort besides min and max.
            Defaults to 2.
        rng (random.Random, optional): the cohort sampler. Defaults to a
            generator seeded 0.
        stage_widths (bool): the random members draw one width per backbone
            stage (``width_stages()``); the full network and the smallest stay
            uniform. Defaults to False.

    Attributes:
        host: the model family's adapter.
        num_views: how many views a member may be fed.
    """

    def __init__(self, wrapper, grid: WidthGrid, view_source, distill: str,
                 num_random: int = 2, rng: Optional[random.Random] = None,
                 stage_widths: bool = False):
        self.wrapper = wrapper
        self.model = unwrap_model(wrapper)
        self.host = host_of(self.model)
        self.grid = grid
        self.view_source = view_source
        self.num_views = len(view_source.views)
        self.distill = distill
        self.num_random = num_random
        self.rng = rng if rng is not None else random.Random(0)
        self.stage_widths = bool(stage_widths)
        self.num_stages = None
        if self.stage_widths:
            stages = self.host.backbone.width_stages()
            if not stages:
                raise ValueError(
                    f'MutualLearningHook: stage_widths=True, but '
                    f'{type(self.host.backbone).__name__} defines no stages (its '
                    'width_stages() is empty); valid: stage_widths=False')
            self.num_stages = len(stages)
        self.host.prepare_consumer()  # idempotent; before the BN layers are listed
        self._running_stat_norms = [norm for _, norm in batch_norms(self.model)]
        self._logits = None
        self._capturing = False
        self._handle = None
        if distill == 'kl':
            self._handle = self.host.logits_head().register_forward_hook(self._keep_logits)

    @classmethod
    def of(cls, wrapper, train_dataset, grid: WidthGrid, num_random: int = 2,
           distill: str = 'auto', multi_resolution: bool = True,
           batch_views: Optional[dict] = None,
           rng: Optional[random.Random] = None,
           stage_widths: bool = False) -> 'MutualStep':
        """The step of ``wrapper`` (``runner.model``) trained on
        ``train_dataset``, with ``MutualLearningHook``'s arguments (see there):
        the family's adapter prepares the model (input-following consumer),
        the view source is read from the dataset's pipeline (or made from the
        batch, or the backbone's own), ``distill='auto'`` resolves to the
        family's default.

        Raises:
            TypeError: a model no family adapter slims, or one that defines its
                own ``train_step`` (the step would bypass it).
            ValueError: ``distill='kl'`` without a classification head; views
                the pipeline and ``batch_views`` cannot provide.
        """
        model = unwrap_model(wrapper)
        try:
            host = host_of(model)
        except TypeError as err:
            raise TypeError(f'MutualLearningHook cannot slim this model: {err}') from None
        if defines_own_train_step(model):
            raise TypeError(
                f'MutualLearningHook: {type(model).__name__} defines its own train_step, '
                'which the mutual step would bypass; train it without the hook or move '
                'what its train_step adds into its loss')
        mode = host.default_distill if distill == 'auto' else distill
        if mode == 'kl' and host.logits_head() is None:
            raise ValueError(
                f'MutualLearningHook: distill="kl" needs a classification head (class '
                f'logits); {host.name} ({type(host).__name__}) has none: use '
                'distill="gt"')
        view_source = host.training_views(train_dataset, multi_resolution, batch_views)
        return cls(wrapper, grid, view_source, mode, num_random, rng, stage_widths)

    # ------------------------------------------------------------ the step
    def train_step(self, data: dict, optim_wrapper,
                   cohort: Optional[Sequence[Member]] = None) -> Dict[str, torch.Tensor]:
        """Train one cohort on ``data`` (drawn from the sampler when ``cohort``
        is None); the optimizer steps once.

        Args:
            data: the collated batch, as the train loop passes it.
            optim_wrapper: the runner's optim wrapper (AMP, clipping and
                ``accumulative_counts`` are its own business).
            cohort: members, the full network first; a one-member cohort trains
                that member on its own loss.

        Returns:
            log variables: every member's losses prefixed by its name, its
            width, view, input size and frame count, and ``loss`` (the sum).

        Raises:
            NonFiniteLossError: naming the first member whose loss is NaN or
                infinite and its view, before the optimizer steps.
        """
        if cohort is None:
            cohort = sample_cohort(self.grid, self.num_views, self.num_random, self.rng,
                                   self.num_stages)
        self._capturing = self.distill == 'kl'
        try:
            log_vars = _train_cohort(
                self.wrapper, data, optim_wrapper, list(cohort), self.configure,
                capture_logits=self._captured_logits if self._capturing else None,
                make_view=self.view_source.make)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(err.member, err.terms, err.iteration,
                                     self.view_source.describe(err.member.view)) from None
        finally:
            self._capturing, self._logits = False, None
            # validation, checkpoints and the next step see the full network
            self.configure(Member('full', self.grid.max, 0))
        for member in cohort:  # which subnet produced which loss
            log_vars.update(self.view_source.log_vars(member.name, member.view))
        return log_vars

    def configure(self, member: Member) -> int:
        """Put the model in ``member``'s subnet (its width, and a backbone's own
        input view); the index of the data view to feed it. :meth:`train_step`
        returns the model to the full network after each cohort."""
        self.host.backbone.set_width(member.width)
        # Only the full network updates BN running statistics: a sub-network's
        # batch statistics (fewer input channels, another resolution) would mix
        # into the full network's, and validating the full network during
        # training would read that mixture. Sub-networks get their own
        # statistics from BN calibration after training (paper §3.4).
        full = member.name == 'full'
        for norm in self._running_stat_norms:
            norm.track_running_stats = full
        return self.view_source.feed(member.view)

    def trained_space(self) -> TrainedSpace:
        """The subnets this step trains: what the checkpoint records."""
        scales, frames = self.view_source.trained_sizes()
        return TrainedSpace(width_range=[self.grid.min, self.grid.max],
                            width_step=self.grid.step, scales=scales, frames=frames,
                            distill=self.distill, stage_widths=self.stage_widths)

    def close(self) -> None:
        """Undo what the step changed in the model: every BN tracks its running
        statistics again, the logits capture is removed. Idempotent."""
        for norm in self._running_stat_norms:
            norm.track_running_stats = True
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # ------------------------------------------------------ distillation
    def _keep_logits(self, module, args, output) -> None:
        if self._capturing:  # a forward outside the step keeps nothing alive
            self._logits = output

    def _captured_logits(self) -> torch.Tensor:
        logits, self._logits = self._logits, None
        if logits is None:
            raise RuntimeError('MutualLearningHook: the classification head did not '
                               'run during the loss forward')
        return logits
