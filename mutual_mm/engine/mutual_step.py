"""One MutualNet training iteration, driven through the (possibly wrapped) model."""
import contextlib
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..internals import backward_uncounted, run_forward
from ..models.slimming import unwrap_model
from .cohort import Member


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
            f'{member.name!r} (width {member.width:g}, {view}): '
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


def mutual_train_step(wrapper: nn.Module, data: dict, optim_wrapper,
                      cohort: List[Member], configure: Callable[[Member], int],
                      capture_logits: Optional[Callable[[], torch.Tensor]] = None,
                      make_view: Optional[Callable[[dict, int], dict]] = None
                      ) -> Dict[str, torch.Tensor]:
    """Train ``cohort`` on ``data``; gradients accumulate, the optimizer steps once.

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
        log_vars[f'{member.name}.width'] = torch.tensor(member.width)
        log_vars[f'{member.name}.view'] = torch.tensor(float(member.view))
    log_vars['loss'] = total
    return log_vars
