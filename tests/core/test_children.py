"""Child processes and signals (exporter.children): a repeated SIGTERM never interrupts the cleanup;
children never outlive the command, even ``kill -9`` of it takes them down (the death signal),
and a child whose parent is already gone when it starts does not run its command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter import children

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")

TERMINATED = 143

# Two SIGTERMs, the second while the first one's cleanup runs (as when a supervisor repeats it, or
# when two promtool runs each meet the test-only fault point and signal the process)
SECOND_SIGTERM_DURING_CLEANUP = """
import os, signal, sys
from pathlib import Path
from exporter import children

children.install_signal_handlers()
try:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # not reached: the handler raises Terminated
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        Path(sys.argv[1]).write_text("cleaned up")
except children.Terminated:
    sys.exit(143)
"""


def test_a_second_sigterm_during_cleanup_lets_the_cleanup_finish(tmp_path):
    marker = tmp_path / "cleanup-done"
    done = subprocess.run([sys.executable, "-c", SECOND_SIGTERM_DURING_CLEANUP, str(marker)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == TERMINATED, done.stderr
    assert marker.read_text() == "cleaned up"


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
