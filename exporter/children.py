"""Child processes (promtool) that never outlive the command that started them.

- Each child runs in its own process group, and every live child is tracked: when the command
  ends by an exception, by Ctrl-C (SIGINT) or by SIGTERM (see :func:`signals_stop_children`),
  :func:`kill_all` kills each child's whole group before the command exits.
- Once the command stops (a signal, or the caller's ``stop`` event) no child starts any more.
- On Linux each child also gets ``PR_SET_PDEATHSIG(SIGKILL)`` before it executes, so even
  ``kill -9`` of this process, which runs no cleanup, takes the children down. The kernel sends
  that signal when the *thread* that started the child ends; the thread waits for its child, so
  that is never earlier than the child's own end.
- The death signal is armed by util-linux ``setpriv`` (then a shell checks the parent is still
  this process) rather than by Python code between fork and exec: a ``preexec_fn`` forces a full
  ``fork()`` of this process, whose page tables (GBs of timeline while backfilling) the kernel
  copies for every child and whose pages then fault once each on the next write (2.2 s of CPU for
  7 children of a 1.5 GB process, against 0.06 s with ``vfork``, BENCHMARKS.md). Without
  ``setpriv`` the ``preexec_fn`` is the fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_live: set[subprocess.Popen] = set()
_stopping = threading.Event()
_guard = threading.RLock()  # re-entrant: the signal handler may run while this thread holds it
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform.startswith("linux") else None
_setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
# runs in the child once setpriv armed the death signal: a parent that died before that is not
# this process any more, and the child must not run on as an orphan
_PARENT_CHECK = 'test "$PPID" = "$1" || exit 1; shift; exec "$@"'


def run(command: list[str], *, env: dict[str, str] | None = None, on_start: Callable[[], None] | None = None,
        stop: threading.Event | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` to completion (text output captured); it is killed if this process stops.

    ``on_start`` is called once the child runs (the fault-injection tests die there). ``stop``: the
    caller's own "stopping" flag (set before it calls :func:`kill_all`); once it or a signal says
    stop, the child is not started, or killed at once, and :class:`Stopped` is raised.
    """
    raise_if_stopping(stop)
    if _setpriv:
        argv, preexec = [_setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _PARENT_CHECK, "sh",
                         str(os.getpid()), *command], None
    else:
        argv, preexec = command, _die_with_parent(os.getpid())
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               process_group=0, preexec_fn=preexec)
    with _guard:
        _live.add(process)
    try:
        raise_if_stopping(stop)  # the stop came after the check above, and kill_all may have missed this child
        if on_start is not None:
            on_start()
        out, err = process.communicate()
    except BaseException:
        _kill(process)
        raise
    finally:
        with _guard:
            _live.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def kill_all() -> None:
    """Kill every live child's process group and reap it."""
    with _guard:
        processes = list(_live)
    for process in processes:
        _kill(process)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that cleanup (``finally``) runs as for Ctrl-C."""


class Stopped(Exception):
    """A child was not started, or killed as it started: the command is stopping."""


@contextlib.contextmanager
def signals_stop_children():
    """While inside, SIGTERM and Ctrl-C (SIGINT) stop the command the same way: no child starts
    any more, the live ones are killed, then Terminated / KeyboardInterrupt is raised in the main
    thread so that cleanup (``finally``: temporary outputs removed) runs.

    A second signal while the first is handled or its cleanup runs is ignored: handling it again
    deadlocked (the nested kill_all waited for the child whose wait lock the interrupted one held)
    or raised into the cleanup, leaving temporary outputs behind. On leaving, the previous handlers
    come back and the process may start children again (the CLI run in-process, as tests do).
    """
    handlers = {signal.SIGTERM: _stop_with(Terminated), signal.SIGINT: _stop_with(KeyboardInterrupt)}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stopping.clear()


def _stop_with(exception: type[BaseException]):
    def on_signal(signum, frame):
        if _stopping.is_set():
            return
        _stopping.set()  # no new children from other threads either
        kill_all()
        raise exception()
    return on_signal


def raise_if_stopping(stop: threading.Event | None = None) -> None:
    """:class:`Stopped` once a signal or the caller's own ``stop`` flag says stop (work between
    children, e.g. backfill's renders, stops at the same flags as the children do)."""
    if _stopping.is_set() or (stop is not None and stop.is_set()):
        raise Stopped()


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _die_with_parent(parent_pid: int):
    def in_child() -> None:  # runs in the child between fork and exec
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent died before the death signal was armed
    return in_child
