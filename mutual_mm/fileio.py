"""Files written as a database writes them, and checkpoints read with their name.

Every file a mutual_mm tool writes (calibrated checkpoints, tables, plots, ONNX
graphs, exported subnets) goes to a temporary name in its destination folder
and is moved into place with ``os.replace``, which is atomic on POSIX within one
file system. An interrupt (SIGINT, SIGTERM) or a full disk at any moment leaves
either the previous complete file or the new complete file, never a truncated
one, and never removes what was there before. Folders of several files (the
ONNX graphs of a lookup table) are built aside and swapped in whole.
"""
import contextlib
import errno
import os
import os.path as osp
import secrets
import shutil
import signal
import tempfile
import zipfile
from typing import Iterator

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_space(folder: str) -> str:
    """The free space of ``folder``'s file system, in MiB."""
    try:
        return f'{shutil.disk_usage(folder).free / 2 ** 20:.1f} MiB free'
    except OSError:
        return 'free space unknown'


def write_error(path: str, err: OSError) -> OSError:
    """``err`` restated with the file it failed to write and the free space
    (a bare ``[Errno 28] No space left on device`` names neither)."""
    folder = osp.dirname(osp.abspath(path))
    hint = (f' ({free_space(folder)} in {folder}); nothing was replaced: free space or '
            'write elsewhere, then run again') if err.errno in FULL_DISK_ERRNOS else ''
    return OSError(err.errno, f'could not write {path}: {err.strerror or err}{hint}')


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path in ``path``'s folder to write to; on a normal exit it
    is flushed to disk and moved onto ``path``, on any exception (an
    interrupt included) removed, leaving ``path`` as it was.

    Example::

        with atomic_path('table.csv') as tmp:
            with open(tmp, 'w') as f:
                f.write(text)
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # the same extension: writers that choose a format by it (matplotlib,
    # mmengine's Config.dump) write the right one
    tmp = _new_file(folder, f'.{osp.basename(path)}.', '.tmp' + osp.splitext(path)[1])
    try:
        with _full_disk_named(path):
            yield tmp
            _fsync(tmp)
            os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def _full_disk_named(path: str) -> Iterator[None]:
    """A full disk inside the block raised as :func:`write_error` of ``path``.
    ``torch.save`` to a path reports it as a ``RuntimeError`` of its zip
    writer ("unexpected pos ..."), not as ``ENOSPC``: a failure with (almost)
    no space left is taken for a full disk."""
    try:
        yield
    except OSError as err:
        if err.errno in FULL_DISK_ERRNOS:
            raise write_error(path, err) from err
        raise
    except RuntimeError as err:
        if _nearly_full(osp.dirname(osp.abspath(path))):
            raise write_error(path, OSError(errno.ENOSPC, f'No space left on device '
                                            f'({err})'.split('\n')[0])) from err
        raise


def _nearly_full(folder: str) -> bool:
    try:
        return shutil.disk_usage(folder).free < 2 ** 20
    except OSError:
        return False


def _new_file(folder: str, prefix: str, suffix: str) -> str:
    """A new empty file of a free name in ``folder``, with the permissions
    ``open(path, 'w')`` would give it (0o666 less the umask): ``tempfile.mkstemp``
    makes 0o600 files, and the file moved into place keeps them, so a checkpoint
    or table would be unreadable to the rest of a shared project."""
    while True:
        tmp = osp.join(folder, f'{prefix}{secrets.token_hex(4)}{suffix}')
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _fsync(path: str) -> None:
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
    """``text`` written to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        f.write(text)


def save_torch(obj, path: str) -> None:
    """``torch.save(obj, path)`` atomically."""
    import torch
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def atomic_folder(path: str) -> Iterator[str]:
    """A fresh temporary folder beside ``path`` to fill; on a normal exit it
    replaces ``path`` whole (the old folder is moved aside first and removed
    only once the new one is in place), on an exception it is removed and
    ``path`` is left as it was. ``path`` never holds files of two runs."""
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=parent)
    try:
        with _full_disk_named(path):
            yield tmp
            old = None
            if osp.exists(path):
                old = tempfile.mkdtemp(prefix=f'.{osp.basename(path)}.', suffix='.old',
                                       dir=parent)
                os.rmdir(old)
                os.rename(path, old)
            os.rename(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def exit_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit(128 + 15)`` in this process, as Ctrl-C
    raises ``KeyboardInterrupt``: the ``finally`` blocks of an interrupted
    write then remove its temporary file (the file in place is intact either
    way). For the tools' entry points; main thread only."""
    signal.signal(signal.SIGTERM, _exit_143)


def _exit_143(signum, frame):
    raise SystemExit(128 + signum)


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (``b`` may not exist yet)."""
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.realpath(a) == osp.realpath(b)


def check_readable_checkpoint(path: str) -> None:
    """Refuse a checkpoint that cannot be a complete ``torch.save`` file, with
    its path and what to do, before a loader fails with a bare ``EOFError``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: it is empty, or a zip archive (torch's format) cut short.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    size = osp.getsize(path)
    advice = ('it was probably cut short by an interrupt or a full disk while being '
              'written; use a complete checkpoint (another iter_*.pth of the training '
              'work_dir, or the file the tool that wrote this one started from)')
    if size == 0:
        raise ValueError(f'checkpoint {path} is empty (0 bytes): {advice}')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic[:2] == b'PK' and not zipfile.is_zipfile(path):
        raise ValueError(f'checkpoint {path} is a truncated zip archive ({size} bytes, no '
                         f'central directory): {advice}')
