"""Child processes and the stopping signals (exporter.children): SIGTERM and Ctrl-C stop the same
way, a repeated signal never interrupts the cleanup, and no child starts once the command stops;
children never outlive the command, even ``kill -9`` of it takes them down (the death signal),
and a child whose parent is already gone when it starts does not run its command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter import children

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")

# exit code, and the exception the first signal raises in the main thread
STOPPED_BY = {"SIGTERM": (143, "children.Terminated"), "SIGINT": (130, "KeyboardInterrupt")}

# Two signals, the second while the first one's cleanup runs (as when a supervisor repeats SIGTERM,
# a user presses Ctrl-C twice, or two promtool runs each meet the test-only fault point)
SECOND_SIGNAL_DURING_CLEANUP = """
import os, signal, sys
from pathlib import Path
from exporter import children

sig = getattr(signal, sys.argv[2])
try:
    with children.signals_stop_children():
        try:
            os.kill(os.getpid(), sig)
            signal.pause()  # not reached: the handler raises
        finally:
            os.kill(os.getpid(), sig)
            Path(sys.argv[1]).write_text("cleaned up")
except {exception}:
    sys.exit({code})
"""

# After the first signal no child starts; once the command is over (the CLI run in-process) they may
CHILD_AFTER_THE_SIGNAL = """
import os, signal, sys
from pathlib import Path
from exporter import children

sig, late, later = getattr(signal, sys.argv[2]), Path(sys.argv[1]) / "late", Path(sys.argv[1]) / "later"
with children.signals_stop_children():
    try:
        os.kill(os.getpid(), sig)
        signal.pause()
    except {exception}:
        pass
    try:
        children.run(["touch", str(late)])
    except children.Stopped:
        print("refused")
children.run(["touch", str(later)])
"""


@pytest.mark.parametrize("signal_name", sorted(STOPPED_BY))
def test_a_second_signal_during_cleanup_lets_the_cleanup_finish(tmp_path, signal_name):
    code, exception = STOPPED_BY[signal_name]
    marker = tmp_path / "cleanup-done"
    script = SECOND_SIGNAL_DURING_CLEANUP.format(exception=exception, code=code)
    done = subprocess.run([sys.executable, "-c", script, str(marker), signal_name],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert marker.read_text() == "cleaned up"


@pytest.mark.parametrize("signal_name", sorted(STOPPED_BY))
def test_no_child_starts_after_a_stopping_signal(tmp_path, signal_name):
    script = CHILD_AFTER_THE_SIGNAL.format(exception=STOPPED_BY[signal_name][1])
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), signal_name],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused"]
    assert not (tmp_path / "late").exists()
    assert (tmp_path / "later").exists()


def test_no_child_starts_once_the_callers_stop_is_set(tmp_path):
    stop = threading.Event()
    assert children.run(["touch", str(tmp_path / "before")], stop=stop).returncode == 0
    stop.set()
    with pytest.raises(children.Stopped):
        children.run(["touch", str(tmp_path / "after")], stop=stop)
    assert (tmp_path / "before").exists()
    assert not (tmp_path / "after").exists()


PARENT = """
import sys
from exporter import children
children.run(["sleep", "300"], on_start=lambda: print("started", flush=True))
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def sleeps_of(parent: int) -> list[int]:
    """Pids of ``sleep 300`` processes whose parent is ``parent`` (read before it dies)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes()
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if command == b"sleep\x00300\x00" and ppid == parent:
                found.append(int(proc.name))
    return found


@linux_only
def test_kill_9_of_the_parent_takes_its_running_child_down():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child: list[int] = []
    try:
        assert parent.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 10
        while not (child := sleeps_of(parent.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(child) == 1  # the command itself, exec'd in place of any wrapper
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(child[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child[0])
    finally:
        parent.kill()
        parent.wait()
        for pid in child:  # a failed run leaves no sleeper behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@linux_only
@pytest.mark.skipif(children._setpriv is None, reason="setpriv (util-linux) not installed")
def test_a_child_whose_parent_is_gone_before_the_death_signal_is_armed_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    # as if the parent (a pid that is not this child's parent) had died before setpriv armed the signal
    done = subprocess.run([children._setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", children._PARENT_CHECK,
                           "sh", str(os.getpid() + 1_000_000), "touch", str(marker)])
    assert done.returncode == 1
    assert not marker.exists()
    done = subprocess.run([children._setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", children._PARENT_CHECK,
                           "sh", str(os.getpid()), "touch", str(marker)])
    assert done.returncode == 0 and marker.exists()
