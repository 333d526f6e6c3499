"""SafeCheckpointHook: mmengine's CheckpointHook that never leaves a run
without a loadable checkpoint."""
import os.path as osp
from collections import deque
from typing import Dict, List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.runner import Runner

from ...fileio import FULL_DISK_ERRNOS, atomic_path, write_error, write_text
from ...registry import HOOKS

_MISSING = object()


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """Save checkpoints as :class:`mmengine.hooks.CheckpointHook` does, in an
    order that always leaves a complete checkpoint to resume from.

    mmengine's hook deletes the oldest kept checkpoint (and the previous best
    one) *before* writing the new one, and writes both the checkpoint and
    ``work_dir/last_checkpoint`` in place. A full disk (``ENOSPC``) then leaves
    a truncated ``iter_N.pth``, no older checkpoint, and ``last_checkpoint``
    naming a deleted file, so ``--resume`` fails. This hook, for every
    checkpoint (latest and best):

    1. writes it to a temporary name in its folder (``runner.save_checkpoint``,
       so every hook's ``before_save_checkpoint`` runs as before), flushes it to
       disk and moves it into place with ``os.replace``
       (:func:`mutual_mm.fileio.atomic_path`);
    2. then rewrites ``last_checkpoint`` the same way, to name it;
    3. only then deletes the checkpoints beyond ``max_keep_ckpts`` (or the
       previous best one).

    A failed write raises an ``OSError`` naming the file (and, for a full
    disk, the free space), removes the temporary file and leaves the previous
    checkpoints and ``last_checkpoint`` as they were. The price: for a moment
    the folder holds one checkpoint more than ``max_keep_ckpts``, so keep room
    for it.

    Everything else is mmengine's: file names, the message hub's
    ``last_ckpt``/``keep_ckpt_ids``/``best_score``/``best_ckpt`` entries (the
    saved checkpoint holds the same ones), resuming, ``save_best``,
    ``published_keys`` (published copies are written by mmengine, never over a
    training checkpoint). Checkpoints that do not go to a local folder (an
    ``out_dir`` or ``backend_args`` naming another storage backend, the
    deprecated ``file_client_args``) or a runner other than mmengine's
    ``Runner`` (``FlexibleRunner`` saves through its strategy) are saved by
    mmengine's own code, as ``CheckpointHook`` would, and the log says so.

    Order: priority ``VERY_LOW``, as ``CheckpointHook``: in
    ``after_train_iter``/``after_train_epoch``/``after_val_epoch`` it runs after
    every other hook (mmengine's ``ParamSchedulerHook``, ``LoggerHook``,
    ``MutualLearningHook``...). ``before_save_checkpoint`` of every hook runs
    inside the write, before any byte is written: when one refuses
    (``MutualLearningHook`` refuses non-finite weights), nothing is replaced
    or deleted.

    Config (a drop-in for ``CheckpointHook``)::

        default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook',
                                             interval=1000, by_epoch=False,
                                             max_keep_ckpts=1))

    Args:
        interval (int): The saving period, in epochs if ``by_epoch`` else in
            iterations. Defaults to -1 (never).
        by_epoch (bool): Save by epoch or by iteration. Defaults to True.
        save_optimizer (bool): Save the optimizer state. Defaults to True.
        save_param_scheduler (bool): Save the parameter schedulers' states.
            Defaults to True.
        out_dir (str, optional): Root folder of the checkpoints (joined with
            the last part of ``work_dir``). Defaults to None (``work_dir``).
        max_keep_ckpts (int): How many of the latest checkpoints to keep; the
            older ones are deleted once the new one is complete. Defaults to
            -1 (all).
        save_last (bool): Save at the end of training regardless of
            ``interval``. Defaults to True.
        save_best (str | list[str], optional): Metric(s) whose best checkpoint
            is kept (``'auto'``: the first metric). Defaults to None.
        rule (str | list[str], optional): ``'greater'`` or ``'less'`` per
            ``save_best`` metric; None infers it from the name.
        greater_keys (list[str], optional): Metric names inferred as
            ``'greater'``. Defaults to mmengine's list.
        less_keys (list[str], optional): Metric names inferred as ``'less'``.
            Defaults to mmengine's list.
        file_client_args (dict, optional): Deprecated by mmengine; when set,
            saving falls back to mmengine's behaviour.
        filename_tmpl (str, optional): Checkpoint name with one ``{}`` for the
            epoch or iteration. Defaults to ``'epoch_{}.pth'``/``'iter_{}.pth'``.
        backend_args (dict, optional): Storage backend arguments; a non-local
            backend falls back to mmengine's behaviour. Defaults to None.
        published_keys (str | list[str], optional): Keys of the copies
            published after training. Defaults to None.
        save_begin (int): The epoch or iteration saving starts at.
            Defaults to 0.
        **kwargs: Passed on to ``runner.save_checkpoint``, as mmengine does.
    """

    writes_atomically: Optional[bool] = None  # decided in before_train

    def before_train(self, runner) -> None:
        """Resolve the output folder (mmengine's) and decide whether this run's
        checkpoints can be written atomically.

        Args:
            runner (Runner): The runner of the training process.
        """
        super().before_train(runner)
        if self.file_client_args is not None:
            reason = 'file_client_args (deprecated) is set'
        elif not isinstance(self.file_backend, LocalBackend):
            reason = (f'{self.out_dir} is not a local folder '
                      f'({type(self.file_backend).__name__})')
        elif not isinstance(runner, Runner):
            reason = f'a {type(runner).__name__} saves through its own strategy'
        else:
            reason = None
        self.writes_atomically = reason is None
        if reason:
            runner.logger.warning(
                f'SafeCheckpointHook: {reason}; checkpoints are saved as mmengine\'s '
                'CheckpointHook saves them (old ones deleted before the new one is '
                'written: a full disk can leave none)')

    def after_train_epoch(self, runner) -> None:
        """Save a checkpoint every ``interval`` epochs and at the last one.

        Args:
            runner (Runner): The runner of the training process.
        """
        if not self.writes_atomically:
            super().after_train_epoch(runner)
            return
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_epoch(runner)):
            runner.logger.info(f'Saving checkpoint at {runner.epoch + 1} epochs')
            step = runner.epoch + 1
            self.save_step_checkpoint(runner, step, dict(epoch=step, iter=runner.iter))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Save a checkpoint every ``interval`` iterations and at the last one.

        Args:
            runner (Runner): The runner of the training process.
            batch_idx (int): The index of the batch in the train loop.
            data_batch (dict | tuple | list, optional): The batch.
            outputs (dict, optional): The model's outputs.
        """
        if not self.writes_atomically:
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
            return
        if self.by_epoch:
            return
        if self.every_n_train_iters(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_iter(runner)):
            runner.logger.info(f'Saving checkpoint at {runner.iter + 1} iterations')
            step = runner.iter + 1
            self.save_step_checkpoint(runner, step, dict(epoch=runner.epoch, iter=step))

    def after_val_epoch(self, runner, metrics: Dict[str, float]) -> None:
        """Save the best checkpoint(s) when a ``save_best`` metric improved.

        Args:
            runner (Runner): The runner of the training process.
            metrics (dict): The evaluation results.
        """
        if not self.writes_atomically:  # also a runner.val() outside training
            super().after_val_epoch(runner, metrics)
            return
        if len(metrics) == 0:
            runner.logger.warning(
                'Since `metrics` is an empty dict, the behavior to save '
                'the best checkpoint will be skipped in this evaluation.')
            return
        if self.save_best:
            self.save_best_checkpoints(runner, metrics)

    def save_step_checkpoint(self, runner, step: int, meta: dict) -> None:
        """Write the checkpoint of ``step``, point ``last_checkpoint`` at it,
        then delete the checkpoints beyond ``max_keep_ckpts``.

        Args:
            runner (Runner): The runner of the training process.
            step (int): The epoch or iteration the file is named after.
            meta (dict): The checkpoint's ``meta`` (epoch and iteration).
        """
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))
        kept, dropped = self._kept_after(step)
        hub = runner.message_hub
        saved = _hub_info(hub, ('last_ckpt', 'keep_ckpt_ids'))
        # set before the write: the checkpoint's own message hub names itself
        # as the last and a kept one, as mmengine's does (resuming reads them)
        hub.update_info('last_ckpt', path)
        if kept is not None:
            hub.update_info('keep_ckpt_ids', kept)
        previous = None if saved['last_ckpt'] is _MISSING else saved['last_ckpt']
        try:
            self._write(runner, path, previous,
                        save_optimizer=self.save_optimizer,
                        save_param_scheduler=self.save_param_scheduler,
                        meta=meta, by_epoch=self.by_epoch, **self.args)
        except BaseException:
            _restore_hub_info(hub, saved)
            raise
        self.last_ckpt = path
        if kept is not None:
            self.keep_ckpt_ids = deque(kept, self.max_keep_ckpts)
        if not is_main_process():  # rank 0 writes, as runner.save_checkpoint
            return
        write_text(osp.join(runner.work_dir, 'last_checkpoint'), path)
        for old in dropped:
            self._remove(self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old)), keep=path)

    def save_best_checkpoints(self, runner, metrics: Dict[str, float]) -> None:
        """For each ``save_best`` metric that improved: write the new best
        checkpoint, then delete the previous one; then save the latest
        checkpoint again so that it records the new best (as mmengine does).

        Args:
            runner (Runner): The runner of the training process.
            metrics (dict): The evaluation results.
        """
        if self.by_epoch:
            step, unit = runner.epoch, 'epoch'
        else:
            step, unit = runner.iter, 'iter'
        filename = self.filename_tmpl.format(step)
        meta = dict(epoch=runner.epoch, iter=runner.iter)
        if 'auto' in self.key_indicators:
            self._resolve_auto(next(iter(metrics)))
        hub = runner.message_hub
        single = len(self.key_indicators) == 1
        updated = False
        for key, rule in zip(self.key_indicators, self.rules):
            score = metrics[key]
            score_key = 'best_score' if single else f'best_score_{key}'
            ckpt_key = 'best_ckpt' if single else f'best_ckpt_{key}'
            previous = self.best_ckpt_path if single else self.best_ckpt_path_dict[key]
            best = (hub.get_info(score_key) if score_key in hub.runtime_info
                    else self.init_value_map[rule])
            if score is None or not self.is_better_than[key](score, best):
                continue
            updated = True
            name = f'best_{key}_{filename}'.replace('/', '_')  # a metric 'coco/bbox_mAP'
            path = self.file_backend.join_path(self.out_dir, name)
            saved = _hub_info(hub, (score_key, ckpt_key))
            hub.update_info(score_key, score)
            hub.update_info(ckpt_key, path)
            try:
                self._write(runner, path, previous, save_optimizer=False,
                            save_param_scheduler=False, meta=dict(meta), by_epoch=False)
            except BaseException:
                _restore_hub_info(hub, saved)
                raise
            if single:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path
            if previous and is_main_process() and self._remove(previous, keep=path):
                runner.logger.info(f'The previous best checkpoint {previous} is removed')
            runner.logger.info(f'The best checkpoint with {score:0.4f} {key} at {step} '
                               f'{unit} is saved to {name}.')
        if updated and self.last_ckpt is not None:
            self.save_step_checkpoint(runner, step, dict(meta))

    def _kept_after(self, step: int) -> Tuple[Optional[List[int]], List[int]]:
        """The steps kept once ``step`` is saved (None: all kept, untracked)
        and those to delete then."""
        if self.max_keep_ckpts <= 0:
            return None, []
        steps = list(self.keep_ckpt_ids)
        if steps and steps[-1] == step:  # saved again after a new best
            return steps, []
        steps.append(step)
        return steps[-self.max_keep_ckpts:], steps[:-self.max_keep_ckpts]

    def _write(self, runner, path: str, previous: Optional[str], **kwargs) -> None:
        """``runner.save_checkpoint`` to ``path`` through a temporary file; a
        failure says what is left to resume from."""
        if not is_main_process():  # runner.save_checkpoint is master_only
            return
        try:
            with atomic_path(path) as tmp:
                runner.save_checkpoint(osp.dirname(tmp), osp.basename(tmp),
                                       backend_args=self.backend_args, **kwargs)
        except OSError as err:
            if err.errno not in FULL_DISK_ERRNOS:  # atomic_path restated those
                err = write_error(path, err)
            kept = (f'; {previous} is intact and still the one to resume from'
                    if previous and osp.isfile(previous) else '')
            raise OSError(err.errno, f'SafeCheckpointHook: {err.strerror}{kept}') from err

    def _remove(self, path: str, keep: str) -> bool:
        """Delete the checkpoint ``path`` unless it is ``keep``; whether one was."""
        # a filename_tmpl without '{}' names every step's file alike: the
        # "old" one is then the file just written
        if osp.abspath(path) == osp.abspath(keep):
            return False
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
            return True
        if self.file_backend.isdir(path):  # written by a DeepSpeed run
            self.file_backend.rmtree(path)
            return True
        return False

    def _resolve_auto(self, key: str) -> None:
        """``save_best='auto'``: the first metric, with the rule mmengine infers
        for its name."""
        # mmengine infers the rule in CheckpointHook.__init__ (through a
        # private method); a hook built for the name gives it publicly
        probe = CheckpointHook(save_best=key, rule=self.rules[0],
                               greater_keys=self.greater_keys, less_keys=self.less_keys)
        self.key_indicators = probe.key_indicators
        self.rules = probe.rules
        self.is_better_than = probe.is_better_than


def _hub_info(hub, keys) -> dict:
    """The message hub's runtime entries ``keys`` (``_MISSING`` where unset)."""
    return {k: hub.get_info(k) if k in hub.runtime_info else _MISSING for k in keys}


def _restore_hub_info(hub, saved: dict) -> None:
    """Put back entries taken by :func:`_hub_info`: a failed write leaves the
    message hub naming the checkpoints that exist."""
    for key, value in saved.items():
        if value is _MISSING:
            hub.pop_info(key)
        else:
            hub.update_info(key, value)
