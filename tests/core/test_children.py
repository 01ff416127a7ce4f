"""Child processes and SIGTERM (exporter.children): a repeated SIGTERM never interrupts the cleanup."""

from __future__ import annotations

import subprocess
import sys

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
