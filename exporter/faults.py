"""Test-only fault injection: die at a fixed, named point of a stage.

``USAGE_EXPORTER_FAULT=<point>[@<signal>]`` makes the process send itself ``signal`` (default
KILL, i.e. ``kill -9``: no cleanup runs) when it reaches ``point``. ``TERM`` and ``INT`` exercise
the signal handling instead. The crash-safety tests kill every stage at every point and check
that a rerun gives the same bytes as a clean run (tests/core/test_crash_safety.py). Unset in normal
use; an unknown point is an error, so a typo cannot make a test pass vacuously.
"""

from __future__ import annotations

import os
import signal

from exporter.errors import ConfigError

ENVIRONMENT = "USAGE_EXPORTER_FAULT"

POINTS = (
    "extract:after-first-table",    # one table file written in the temporary snapshot directory
    "extract:before-manifest",      # every table written, no manifest yet
    "extract:before-publish",       # manifest written, directory not yet renamed into place
    "reconstruct:after-spans",      # spans.parquet staged, the rest of the set not yet
    "reconstruct:before-publish",   # the whole set staged and synced, not yet swapped in
    "reconstruct:after-publish",    # swapped in, the previous set not yet removed
    "backfill:after-openmetrics",   # the first OpenMetrics file staged
    "backfill:promtool-running",    # a promtool child has just started
    "backfill:before-publish",      # files, blocks and backfill.json staged, not yet swapped in
    "backfill:after-publish",       # swapped in, the previous output not yet removed
    "install-blocks:after-copy",    # the first block copied into <data-dir>/<ULID>.tmp-for-creation
    "install-blocks:after-first-block",  # the first block renamed into place, the others not yet
    "live-state:before-publish",    # the live exporter's saved state staged and synced, not yet swapped in
    "live-state:after-publish",     # swapped in, the previous set not yet removed
)
_SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}


def fault_point(point: str) -> None:
    """Die here if ``USAGE_EXPORTER_FAULT`` names this point (no effect otherwise)."""
    assert point in POINTS, point
    wanted = os.environ.get(ENVIRONMENT)
    if not wanted:
        return
    name, _, how = wanted.partition("@")
    if name not in POINTS or (how or "KILL") not in _SIGNALS:
        raise ConfigError(f"{ENVIRONMENT}={wanted!r}: not one of {', '.join(POINTS)} (optionally @KILL/@TERM/@INT)")
    if name == point:
        os.kill(os.getpid(), _SIGNALS[how or "KILL"])
