"""Publishing a stage's output directory as one set: build it beside the target, fsync, swap it in.

Every stage (extract, reconstruct, backfill) writes its whole output into a private staging
directory next to the target (same filesystem), fsyncs every file and directory, and only then
swaps the staging directory with the target in one atomic ``renameat2(RENAME_EXCHANGE)``. Until
that moment the previous output is untouched; after it, the previous output sits in the staging
path and is removed. A crash anywhere leaves either the old or the new set under the target name,
never a mix (docs/backfill.md, "Crash safety").
A finished directory that replaces nothing (a snapshot, a block installed into Prometheus) is
published by one rename instead (publish_new_directory).

A staging directory is ``.<target name>.staging-<random>`` and is locked (``flock``) by the
process that builds it. A lock outlives no process, so a later run removes any unlocked staging
directory of the same target: it is the leftover of a killed run. Locked ones (a concurrent run)
are left alone, and nothing else is ever deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from exporter.errors import DiskFull, OutputError
from exporter.faults import fault_point

STAGING_INFIX = ".staging-"
_PREVIOUS_INFIX = ".previous-"  # only where RENAME_EXCHANGE is unsupported (see _swap)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NO_SPACE_TEXT = ("os error 28", "os error 122", "no space left on device", "disk quota exceeded")


@contextlib.contextmanager
def staged_directory(target: Path, *, owned: Iterable[str], stage: str) -> Iterator[Path]:
    """Yield an empty, locked staging directory; when the block ends normally, publish it as ``target``.

    ``owned``: the entry names the stage writes. An existing ``target`` holding anything else is
    refused (OutputError) before any work, because replacing it would delete that. On any
    exception (including KeyboardInterrupt/SystemExit) the staging directory is removed and the
    previous output stays as it was. Raises DiskFull (one line) when the disk fills up.
    """
    target = Path(os.path.realpath(target))
    with disk_errors(target, stage):
        target.parent.mkdir(parents=True, exist_ok=True)
        refuse_foreign(target, frozenset(owned), stage)
        recover(target)
        with staging_directory(target.parent, target.name) as staging:
            yield staging
            fsync_tree(staging)
            staging.chmod(0o755)  # mkdtemp made it private; a published output is ordinary data
            fault_point(f"{stage}:before-publish")
            _swap(staging, target)
            fault_point(f"{stage}:after-publish")


@contextlib.contextmanager
def staging_directory(parent: Path, name: str) -> Iterator[Path]:
    """A new private directory ``<parent>/.<name>.staging-<random>``, locked while the block runs
    and removed at its end (whatever is still in it: an unfinished or a replaced set)."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}{STAGING_INFIX}", dir=parent))
    lock = _lock(staging)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(lock)


def write_text_atomically(path: Path, text: str) -> None:
    """Replace the single file ``path`` by ``text`` in one rename: a reader sees the old or the new
    file, a crash leaves at most ``<name>.tmp`` beside it (a set of files: staged_directory)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def publish_new_directory(finished: Path, target: Path) -> None:
    """Give the finished, fsynced directory ``finished`` the new name ``target`` (same filesystem) in one
    rename and sync the parent, so readers see all of it or nothing, also after a crash. Never replaces
    an output: callers refuse an existing ``target`` first (a set that replaces one: staged_directory)."""
    os.rename(finished, target)
    fsync_directory(target.parent)


def remove_stale_staging(parent: Path) -> None:
    """Remove every unlocked staging directory in ``parent`` (the leftovers of killed runs)."""
    for path in sorted(parent.glob(f".*{STAGING_INFIX}*")):
        _remove_if_unlocked(path)


def refuse_foreign(target: Path, owned: frozenset[str], stage: str) -> None:
    """OutputError when ``target`` exists and is not a directory this stage could have written."""
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"{target} is not a directory; {stage} writes a directory there")
    foreign = sorted(name for name in os.listdir(target) if name not in owned and not name.endswith(".tmp"))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputError(f"{target} holds {shown}, which {stage} did not write; refusing to replace it "
                          "(give the output a directory of its own)")


def recover(target: Path) -> None:
    """Remove unlocked staging directories of ``target`` (left by killed runs); put a previous
    output back when a killed fallback swap left only that (see ``_swap``)."""
    parent = target.parent
    for path in sorted(parent.glob(f".{target.name}{_PREVIOUS_INFIX}*")):
        if not target.exists():
            os.rename(path, target)
        else:
            _remove_if_unlocked(path)
    for path in sorted(parent.glob(f".{target.name}{STAGING_INFIX}*")):
        _remove_if_unlocked(path)


def _remove_if_unlocked(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # a live run owns it
    finally:
        os.close(fd)
    shutil.rmtree(path, ignore_errors=True)


def _lock(directory: Path) -> int:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _swap(staging: Path, target: Path) -> None:
    """Make ``staging``'s content appear under ``target`` in one step; the old content ends up in ``staging``."""
    if not target.exists():
        os.rename(staging, target)
    elif not _exchange(staging, target):
        # Filesystems without RENAME_EXCHANGE (some network filesystems): two renames. A kill
        # between them leaves the previous output under a .previous- name, which recover() puts back.
        previous = target.with_name(f".{target.name}{_PREVIOUS_INFIX}{staging.name.rsplit('-', 1)[-1]}")
        os.rename(target, previous)
        os.rename(staging, target)
        os.rename(previous, staging)
    fsync_directory(target.parent)


def _exchange(first: Path, second: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False where the call is not supported."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _libc():
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (children first), so a published set is on disk."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync(os.path.join(directory, name), os.O_RDONLY)
        fsync_directory(Path(directory))


def fsync_directory(directory: Path) -> None:
    _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(err: BaseException) -> bool:
    """An OSError with ENOSPC/EDQUOT, or a library error (polars) whose text reports one."""
    if isinstance(err, OSError) and err.errno in _NO_SPACE:
        return True
    text = str(err).lower()
    return any(marker in text for marker in _NO_SPACE_TEXT)


@contextlib.contextmanager
def disk_errors(target: Path, stage: str) -> Iterator[None]:
    """Turn a full disk (reported by the OS, by polars or by a child process) into one DiskFull line."""
    try:
        yield
    except Exception as err:  # polars raises its own types (ComputeError, ...) for I/O failures
        if isinstance(err, DiskFull) or not is_disk_full(err):
            raise
        raise DiskFull(f"no space left on the device of {target.parent}: {stage} wrote nothing "
                       "(the previous output, if any, is unchanged); free some space and run it again") from None
