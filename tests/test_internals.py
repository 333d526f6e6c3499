"""The private mmengine attributes mutual_mm relies on (mutual_mm/internals.py),
each checked on the installed mmengine: a version that changes one fails here,
by name. And what depends on them: the hook refuses a model with its own
train_step, and says in the log that it replaced the step."""
import inspect

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm import internals
from mutual_mm.models import MutualImageClassifier

from .test_classifier import _hooked_mbv1_cfg

pytestmark = pytest.mark.core


def test_pinned_mmengine_is_the_checked_one():
    import mmengine
    assert mmengine.__version__ == internals.CHECKED_MMENGINE, (
        f'mmengine {mmengine.__version__} is not the version mutual_mm/internals.py '
        f'was checked against ({internals.CHECKED_MMENGINE}): re-check each function '
        'there, then update CHECKED_MMENGINE')


def test_backward_uncounted_leaves_the_accumulation_count():
    model = torch.nn.Linear(2, 1)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                           accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    internals.backward_uncounted(wrapper, model(torch.ones(1, 2)).sum())
    assert wrapper._inner_count == 0  # the cohort's members do not count
    before = model.weight.detach().clone()
    wrapper.update_params(model(torch.ones(1, 2)).sum())  # 1 of 2: no step yet
    assert torch.equal(model.weight, before) and wrapper._inner_count == 1
    wrapper.update_params(model(torch.ones(1, 2)).sum())
    assert not torch.equal(model.weight, before)


def test_runner_skips_loading_once_marked_loaded():
    source = inspect.getsource(Runner.load_or_resume)
    assert 'if self._has_loaded:' in source, 'Runner.load_or_resume changed'

    class Probe:
        _has_loaded = False
    probe = Probe()
    internals.mark_checkpoint_loaded(probe)
    assert probe._has_loaded is True


def test_own_train_step_is_detected():
    class OwnStep(MutualImageClassifier):
        def train_step(self, data, optim_wrapper):
            return {}
    assert internals.defines_own_train_step(OwnStep.__new__(OwnStep))
    assert not internals.defines_own_train_step(
        MutualImageClassifier.__new__(MutualImageClassifier))
    assert 'train_step' in BaseModel.__dict__


def test_hook_refuses_a_model_with_its_own_train_step(tmp_path):
    from mutual_mm.registry import MODELS

    @MODELS.register_module(force=True)
    class ClassifierWithOwnStep(MutualImageClassifier):
        def train_step(self, data, optim_wrapper):
            return {}

    cfg = _hooked_mbv1_cfg(tmp_path)
    cfg.model.type = 'ClassifierWithOwnStep'
    with pytest.raises(TypeError, match='ClassifierWithOwnStep defines its own train_step'):
        Runner.from_cfg(cfg).train()


def test_hook_logs_that_it_replaced_the_step(tmp_path):
    runner = Runner.from_cfg(_hooked_mbv1_cfg(tmp_path))
    runner.train()
    with open(runner.logger.log_file) as f:
        log = f.read()
    assert 'MMDistributedDataParallel' not in log
    assert ('MutualImageClassifier.train_step replaced by the mutual step '
            '(MutualImageClassifier: ClassifierHost)') in log


def test_resuming_tells_a_resume_from_a_load(tmp_path):
    """What MutualLearningHook's record reads at after_load_checkpoint, which
    mmengine calls for ``load_from`` and ``resume`` alike."""
    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(1, 1)

        def forward(self, *args, **kwargs):
            return {}

    for resume in (True, False):
        runner = Runner(Tiny(), work_dir=str(tmp_path / str(resume)), resume=resume)
        assert internals.resuming(runner) is resume
