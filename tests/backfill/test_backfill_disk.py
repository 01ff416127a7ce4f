"""Bounded disk: with --blocks each window's OpenMetrics file is written over by a later window (or
removed at the end) once its block is verified, so the text on disk at any moment is at most that
of the windows in flight (one per worker); and bounded memory: no window's text is held in memory
on the way (it is rendered into its file).

The text present is measured from outside the code under test: a wrapper around the real promtool
sums the .om files in the directory each time promtool starts, and a thread polls the directory."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from exporter.backfill import blocks, windows
from exporter.backfill.blocks import backfill
from exporter.backfill.history import history_before_cutoff
from exporter.backfill.windows import write_and_convert
from exporter.errors import TimelineError
from exporter.progress import SILENT
from tests.backfill.timelines import synthetic_timeline, write_timeline

pytestmark = pytest.mark.prometheus

START = dt.datetime(2024, 1, 1)
NOW = dt.datetime(2030, 1, 1)

WRAPPER = """#!{python}
import glob, os, sys
om = next(a for a in sys.argv[1:] if a.endswith(".om"))
total = 0
for path in glob.glob(os.path.join(os.path.dirname(om), "*.om")):
    try:
        total += os.path.getsize(path)
    except FileNotFoundError:
        pass
with open({log!r}, "a") as log:
    log.write(f"{{total}}\\n")
os.execv({real!r}, [{real!r}] + sys.argv[1:])
"""


@pytest.fixture(scope="module")
def timeline_dir(tmp_path_factory):
    frame = synthetic_timeline(start=START, hours=24 * 30, node_types=("a", "b"), resources=("nodes", "vcpus"))
    return write_timeline(frame, tmp_path_factory.mktemp("timeline"))


def counting_promtool(tmp_path: Path, promtool: str) -> tuple[Path, Path]:
    log = tmp_path / "om-bytes.log"
    wrapper = tmp_path / "promtool-wrapper"
    wrapper.write_text(WRAPPER.format(python=sys.executable, log=str(log), real=promtool))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


class Poller:
    """Polls every .om file under ``root`` (the staging directory is a hidden sibling of --out)."""

    def __init__(self, root: Path, interval: float = 0.002) -> None:
        self.root, self.interval, self.peak, self._stop = root, interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for directory, _, names in os.walk(self.root):
                for name in names:
                    if name.endswith(".om"):
                        try:
                            total += os.path.getsize(os.path.join(directory, name))
                        except FileNotFoundError:
                            pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "Poller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measured_run(timeline_dir: Path, tmp_path: Path, promtool: str, **options):
    wrapper, log = counting_promtool(tmp_path, promtool)
    root = tmp_path / "work"
    root.mkdir()
    with Poller(root) as poller:
        result = backfill(timeline_dir, root / "out", blocks=True, promtool=str(wrapper), block_hours=54,
                          now=NOW, **options)
    at_starts = [int(line) for line in log.read_text().split()]
    assert len(at_starts) == len(result.files)
    return result, max(max(at_starts), poller.peak)


@pytest.mark.parametrize("workers", [1, 2])
def test_text_on_disk_never_exceeds_the_windows_in_flight(timeline_dir, tmp_path, promtool, workers):
    result, peak = measured_run(timeline_dir, tmp_path, promtool, workers=workers)
    sizes = sorted((f.bytes for f in result.files), reverse=True)
    assert len(sizes) > 10
    assert 0 < peak <= sum(sizes[:workers])
    assert peak < sum(sizes) / 4  # far below the whole history's text
    assert list((tmp_path / "work" / "out" / "openmetrics").iterdir()) == []
    manifest = json.loads((tmp_path / "work" / "out" / "backfill.json").read_text())
    assert [f["kept"] for f in manifest["files"]] == [False] * len(result.files)
    assert [f["sha256"] for f in manifest["files"]] == [None] * len(result.files)  # removed: text never hashed
    assert [f["samples_sha256"] for f in manifest["files"]] == [f.samples_sha256 for f in result.files]
    assert all(len(f.samples_sha256) == 64 for f in result.files)  # every window's samples hashed
    assert sum(f["samples"] for f in manifest["files"]) == result.samples


def test_a_window_written_over_a_converted_file_is_the_same_text(timeline_dir, tmp_path, promtool):
    """With blocks, a worker writes its next window over its converted file (a spare); the text,
    also of a shorter window written over a longer one, equals a fresh file's (a wrapper copies
    each file promtool is given), and so do the manifest's samples digests."""
    copies = tmp_path / "copies"
    copies.mkdir()
    wrapper = tmp_path / "copying-promtool"
    wrapper.write_text(f'#!/bin/sh\nfor a; do case "$a" in *.om) cp "$a" {copies}/;; esac; done\n'
                       f'exec {promtool} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    converted = backfill(timeline_dir, tmp_path / "blocks", blocks=True, promtool=str(wrapper), block_hours=54,
                         now=NOW, workers=1)
    fresh = backfill(timeline_dir, tmp_path / "fresh", block_hours=54, now=NOW)
    sizes = [f.bytes for f in fresh.files]
    assert sizes[-1] < max(sizes[:-1])  # the last window is written over a longer one
    assert [(f.path, f.bytes, f.samples_sha256) for f in converted.files] == \
        [(f.path, f.bytes, f.samples_sha256) for f in fresh.files]
    for window in fresh.files:
        assert (copies / Path(window.path).name).read_bytes() == (tmp_path / "fresh" / window.path).read_bytes()
    assert list((tmp_path / "blocks" / "openmetrics").iterdir()) == []


def test_a_window_failing_to_render_leaves_no_spare_file(timeline_dir, tmp_path, promtool, monkeypatch):
    """A window whose rendering fails takes no converted file from the spares, and the spares set
    aside are removed also when the run fails (the old code took a spare before rendering: it
    was left on disk, outside the free list)."""
    history = history_before_cutoff(timeline_dir, holdback=blocks.DEFAULT_HOLDBACK, job="j", instance="i", now=NOW)
    real, rendered = windows.sample_lines, []

    def failing_third(*args, **kwargs):
        rendered.append(None)
        if len(rendered) == 3:
            raise RuntimeError("rendering failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(windows, "sample_lines", failing_third)
    with pytest.raises(RuntimeError, match="rendering failed"):
        write_and_convert(history.samples, history.series, tmp_path, hours=54, tool=promtool, workers=1,
                          keep_openmetrics=False, progress=SILENT, extra=(history.families, history.declared))
    assert len(rendered) >= 3  # the worker may start the next window before the run stops
    assert len(list((tmp_path / "blocks").iterdir())) >= 2  # two windows converted: their files became spares
    assert [p.name for p in (tmp_path / "openmetrics").iterdir() if p.name.startswith("spare-")] == []


def test_keep_openmetrics_keeps_every_file_and_the_measure_sees_them_pile_up(timeline_dir, tmp_path, promtool):
    result, peak = measured_run(timeline_dir, tmp_path, promtool, workers=2, keep_openmetrics=True)
    out = tmp_path / "work" / "out"
    assert sorted(p.name for p in (out / "openmetrics").iterdir()) == sorted(Path(f.path).name for f in result.files)
    assert all(f.kept for f in result.files)
    assert peak >= sum(f.bytes for f in result.files[:-2])  # the last start sees all but the two in flight


def test_without_blocks_the_files_are_the_output_and_stay(timeline_dir, tmp_path):
    result = backfill(timeline_dir, tmp_path / "out", block_hours=54, now=NOW)
    assert all(f.kept for f in result.files)
    assert all((tmp_path / "out" / f.path).stat().st_size == f.bytes for f in result.files)


DROPPING = """#!{python}
import os, sys
args = sys.argv[1:]
index = next(i for i, a in enumerate(args) if a.endswith(".om"))
lines = open(args[index]).read().splitlines(keepends=True)
sample = next(i for i, line in enumerate(lines) if not line.startswith("#"))
short = args[index] + ".short"
open(short, "w").writelines(lines[:sample] + lines[sample + 1:])
args[index] = short
os.execv({real!r}, [{real!r}] + args)
"""


def test_a_block_missing_a_sample_is_an_error_and_nothing_is_published(timeline_dir, tmp_path, promtool):
    wrapper = tmp_path / "dropping-promtool"
    wrapper.write_text(DROPPING.format(python=sys.executable, real=promtool))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(TimelineError, match=r"promtool's block\(s\) from openmetrics/\S+\.om hold (\d+) samples, "
                                            r"the file \d+") as raised:
        backfill(timeline_dir, tmp_path / "out", blocks=True, promtool=str(wrapper), block_hours=54, now=NOW)
    held, written = map(int, re.findall(r"hold (\d+) samples, the file (\d+)", str(raised.value))[0])
    assert held == written - 1
    assert not (tmp_path / "out").exists()


def test_a_hash_failing_while_promtool_runs_stops_the_run_and_leaves_nothing(timeline_dir, tmp_path, promtool,
                                                                            monkeypatch):
    """A kept window's sha256 is taken while its promtool runs: when it fails, that promtool is
    killed, the error is the run's, and nothing is published or left running."""
    pids = tmp_path / "pids"
    wrapper = tmp_path / "pid-promtool"
    wrapper.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec {promtool} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    def failing_hash(out, info):
        deadline = time.monotonic() + 10
        while not pids.exists() and time.monotonic() < deadline:  # this window's promtool has started
            time.sleep(0.01)
        raise OSError(f"cannot read {info.path} back")

    monkeypatch.setattr(windows, "_hashed", failing_hash)
    with pytest.raises(OSError, match=r"cannot read openmetrics/\S+\.om back"):
        backfill(timeline_dir, tmp_path / "out", blocks=True, promtool=str(wrapper), block_hours=54, now=NOW,
                 keep_openmetrics=True)
    started = [int(pid) for pid in pids.read_text().split()]
    assert started
    for pid in started:  # killed and reaped, not left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keep", [False, True])
def test_run_removes_the_window_files_unless_asked_to_keep_them(tmp_path, promtool, keep):
    from tests.core.crash_support import run_main
    from tests.reconstruct.test_reconstruct import small_site, write_snapshot

    snapshot = write_snapshot(tmp_path / "snap", small_site())
    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n  s:\n    db_url: sqlite:///{tmp_path / 'unused.sqlite'}\n"
                      "    history_start: 2020-01-01\n")
    flags = ["--keep-openmetrics"] if keep else []
    assert run_main("run", "--site", "s", "--config", str(config), "--snapshot", str(snapshot), "--out",
                    str(tmp_path / "out"), "--promtool", promtool, "--quiet", *flags) == 0
    out = tmp_path / "out" / "backfill"
    manifest = json.loads((out / "backfill.json").read_text())
    assert manifest["files"] and manifest["blocks"] >= len(manifest["files"])
    on_disk = sorted(p.name for p in (out / "openmetrics").iterdir())
    assert on_disk == (sorted(Path(f["path"]).name for f in manifest["files"]) if keep else [])
    assert [f["kept"] for f in manifest["files"]] == [keep] * len(manifest["files"])
    # the text's sha256 only for a file kept (the real one), null for one removed
    assert [f["sha256"] for f in manifest["files"]] == [
        hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() if keep else None for f in manifest["files"]]


@pytest.mark.parametrize("workers", [1, 2])
def test_no_window_text_is_held_in_memory(tmp_path, promtool, workers, monkeypatch):
    """While the windows are written and converted, Python's own allocations (the text as
    ``bytes``, were it rendered into memory first) grow by less than half a full window's text,
    although promtool's runs leave the time to render ahead."""
    grown, marks, whole_beside_first = [], [], []

    def mark():
        tracemalloc.reset_peak()
        marks.append(tracemalloc.get_traced_memory()[0])

    def measured(samples, *args, **kwargs):
        whole_beside_first.append(callable(samples))
        if callable(samples):  # the whole timeline checked and summed beside the first window: from then on
            def samples(whole=samples):
                checked = whole()
                mark()
                return checked
        else:
            mark()
        converted = write_and_convert(samples, *args, **kwargs)
        grown.append(tracemalloc.get_traced_memory()[1] - marks[0])
        return converted

    monkeypatch.setattr(blocks, "write_and_convert", measured)
    # wide windows (~9 MB of text each), so what grows with the whole history rather than a window
    # (its row numbers in numpy, ~1.3 MB here) and the workers' buffers stay small beside half a
    # window; with 54h windows (~3 MB) that was 1.3 of a 1.47 MB limit, and under load it crossed it
    frame = synthetic_timeline(start=START, hours=24 * 20, node_types=("a", "b", "c", "d"))
    timeline_dir = write_timeline(frame, tmp_path / "timeline")
    tracemalloc.start()
    try:
        result = backfill(timeline_dir, tmp_path / "out", blocks=True, promtool=promtool, block_hours=162, now=NOW,
                          workers=workers)
    finally:
        tracemalloc.stop()
    assert whole_beside_first == [True]  # the first-window path, the one whose mark is set late
    full = min(f.bytes for f in result.files[1:-1])  # the first and last windows are cut short
    assert full > 2_000_000
    assert grown[0] < full / 2, f"{grown[0]:,} bytes held at once; a full window has {full:,}"
