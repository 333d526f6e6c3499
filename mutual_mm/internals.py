"""The private attributes of mmengine that mutual_mm relies on, and why.

Checked against mmengine 0.10.7 (the pinned version; see requirements/).
``tests/test_internals.py`` exercises each on the installed mmengine, so a
version that renames or changes one fails there, by name, before anything
silently trains or tests the wrong way. Nothing else in mutual_mm reads or
writes a private attribute of mmengine, mmdet or mmaction (the stack repairs
in :mod:`mutual_mm.compat` patch published bugs and say so each).
"""
from mmengine.model import BaseModel

CHECKED_MMENGINE = '0.10.7'


def backward_uncounted(optim_wrapper, loss) -> None:
    """``optim_wrapper.backward`` of one cohort member without counting an
    iteration.

    Why private: ``OptimWrapper.backward`` increments ``_inner_count``, which
    decides when ``update_params`` steps under gradient accumulation
    (``accumulative_counts``) and which iteration the loss is scaled for. The
    cohort is ONE iteration whose last member goes through ``update_params``;
    there is no public way to back-propagate without counting.
    """
    optim_wrapper.backward(loss)
    optim_wrapper._inner_count -= 1


def mark_checkpoint_loaded(runner) -> None:
    """Tell ``runner`` its checkpoint is already loaded, so ``runner.test()``
    does not load ``cfg.load_from`` again.

    Why private: ``Runner.load_or_resume`` (run by ``test()``/``val()``) loads
    ``load_from`` unless ``_has_loaded``; the lookup table loads once, reads
    the checkpoint's calibration and then tests many subnets. Reloading would
    overwrite the calibrated statistics written in between.
    """
    runner._has_loaded = True


def resuming(runner) -> bool:
    """Whether ``runner`` resumes a run (``resume=True``), as opposed to loading
    weights to start one (``load_from`` alone) or to deploy them; what an
    ``after_load_checkpoint`` hook needs to know, as mmengine's own ``EMAHook``
    does.

    Why private: mmengine calls ``after_load_checkpoint`` for both, and keeps
    the difference only in ``Runner._resume`` (``EMAHook`` reads it the same way).
    """
    return bool(runner._resume)


def defines_own_train_step(model) -> bool:
    """Whether ``model``'s class replaces mmengine's ``BaseModel.train_step``
    (the hook replaces the step and would bypass such a class's own)."""
    return type(model).train_step is not BaseModel.train_step


def run_forward(model, data: dict, mode: str):
    """A preprocessed batch through ``model`` (or its DDP wrapper) as
    mmengine's loops run it, with the public call (``BaseModel._run_forward``
    unpacks the dict the same way)."""
    return model(**data, mode=mode)
