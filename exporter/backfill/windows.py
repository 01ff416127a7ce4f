"""One block window at a time: OpenMetrics text -> file -> promtool block -> block verified -> file set aside.

Each of ``workers`` threads takes the next window, renders its text straight into its file,
runs promtool on it, checks the block against the window (sample count, time range) and sets
the file aside for the next window to overwrite (unless asked to keep it), then takes the next.
Each window's samples are hashed from its numbers (digest.samples_sha256) once its promtool has
started (without promtool, right after the write); its text only when the file is kept (while
promtool reads it). So at any moment at most ``workers`` files exist: the extra disk of a run,
beyond its blocks, is bounded by the text of ``workers`` windows, not by the whole history
(docs/backfill.md), and no rendered text is held in memory (a window's rows are held only from
its write until its promtool starts).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from exporter import children
from exporter.backfill.digest import samples_sha256
from exporter.backfill.history import epoch_of, split_windows, window_rows
from exporter.backfill.families import write_family_samples
from exporter.backfill.openmetrics import EOF, family_parts, sample_lines, sample_prefixes, write_samples
from exporter.errors import TimelineError
from exporter.faults import fault_point
from exporter.layout import BLOCKS_DIR, OPENMETRICS_DIR
from exporter.metrics import ExtraFamily
from exporter.progress import Progress
from exporter.snapshots import file_sha256

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class WindowFile:
    """One OpenMetrics file: the samples of one block window."""

    path: str  # relative to the output directory
    window_start: dt.datetime
    window_end: dt.datetime
    samples: int
    bytes: int
    samples_sha256: str  # of the samples, not their text (digest.samples_sha256, docs/backfill.md)
    sha256: str | None  # of the text; None when the file was not kept (never hashed: nothing to check it against)
    blocks: tuple[str, ...] = ()  # ULIDs promtool created from this file
    kept: bool = True  # False: set aside once its block was verified (written over, or removed at the end)


@dataclass(frozen=True)
class Converted:
    files: tuple[WindowFile, ...]  # in window order
    # both from the stage's start; with ``samples`` a function (a first window), that includes the
    # whole timeline's check and sums, which overlap the first window's write and promtool run
    write_seconds: float  # wall time until every file was written
    seconds: float  # wall time of the whole stage


def promtool_command(om_file: Path, blocks_dir: Path, hours: int, promtool: str | None = None) -> tuple[str, ...]:
    """The exact promtool invocation turning one window file into one block."""
    return (promtool or "promtool", "tsdb", "create-blocks-from", "openmetrics",
            f"--max-block-duration={hours}h", str(om_file), str(blocks_dir))


def write_and_convert(samples: pl.DataFrame | Callable[[], pl.DataFrame], series: pl.DataFrame, out: Path, *,
                      hours: int, tool: str | None, workers: int | None, keep_openmetrics: bool, progress: Progress,
                      extra: tuple[pl.DataFrame, tuple[ExtraFamily, ...]] | None = None,
                      first: tuple[dt.datetime, pl.DataFrame] | None = None, total: int | None = None) -> Converted:
    """Write the window files; with ``tool``, convert each one as soon as it is written, verify its
    block and (unless ``keep_openmetrics``) remove the file. ``extra``: the extra families' lines
    (exporter.backfill.families.family_lines) and their declarations, written into the same
    windows after the timeline's families.

    ``workers`` threads each take a window, write it, run promtool on it (a child process) and
    verify it and set its file aside (_SpareFiles) before taking the next: the disk bound is the
    text of ``workers`` windows (docs/backfill.md). Rendering straight into the file, not into memory first, spares a copy of
    every byte (fresh pages cost CPU, BENCHMARKS.md "toward promtool's floor"); with a worker per
    core, a window's rendering overlaps the other workers' promtool runs anyway.

    ``samples`` may be a function giving them (it checks and sums the whole timeline): with
    ``first`` (a window's start and its rows, computed alone: history.first_window), that window
    is written and converted while the function runs, and must then equal its rows there; ``total``
    is the number of windows for the progress bar."""
    extra_lines, declared = extra if extra is not None else (None, ())
    extra_windows = dict(split_windows(extra_lines, hours)) if extra_lines is not None else {}
    (out / OPENMETRICS_DIR).mkdir(parents=True, exist_ok=True)
    prefixes = sample_prefixes(series)
    stopping = threading.Event()
    spares = _SpareFiles(out / OPENMETRICS_DIR)
    started = time.perf_counter()
    written_at = started

    def convert(start: dt.datetime, rows: Callable[[], pl.DataFrame]) -> WindowFile:
        nonlocal written_at
        # the render stops at its next family once the run is failing or interrupted (the pool's exit
        # waits for it: a whole render took ~0.25 s of abort latency)
        written = _write_window(out, rows(), prefixes, start, hours, extra=(extra_windows.get(start), declared),
                                spares=spares, before_family=lambda: children.raise_if_stopping(stopping))
        fault_point("backfill:after-openmetrics")
        written_at = max(written_at, time.perf_counter())
        if not tool:
            return _hashed(out, _digested(written))
        digested: list[WindowFile] = []

        def take_digests() -> None:  # once promtool runs: off the path to its start (BENCHMARKS.md)
            info = _digested(written)
            digested.append(_hashed(out, info) if keep_openmetrics else info)

        blocks = _run_promtool(tool, out, written.path, hours, stopping, on_start=take_digests)
        info = replace(digested[0], blocks=blocks)
        _verify_blocks(out / BLOCKS_DIR, info)
        if keep_openmetrics:
            return info
        spares.give(out / info.path)
        return replace(info, kept=False)

    # exits in reverse order: the pool's waits for every worker, so no spare is given or taken after
    # the spares' exit removes them
    windows = None if callable(samples) else _windows(samples, hours, extra_windows)
    futures: dict[dt.datetime, concurrent.futures.Future[WindowFile]] = {}
    with spares, concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool, \
            progress.stage("write OpenMetrics" + (" + promtool blocks" if tool else ""),
                           total=total if windows is None else len(windows)) as bar:
        try:
            if first is not None:
                futures[first[0]] = pool.submit(convert, first[0], lambda: first[1])
            if windows is None:
                samples = samples()
                windows = _windows(samples, hours, extra_windows)
            rows_of_first = None
            for start, rows in windows:
                if start not in futures:
                    futures[start] = pool.submit(convert, start, _gather(samples, rows))
                else:  # compared once the other windows are on their way
                    rows_of_first = _gather(samples, rows)
            if first is not None and rows_of_first is None:
                raise TimelineError(f"backfill wrote a window at {first[0]:%Y-%m-%d %H:%M} the whole timeline does not "
                                   "have: a bug in history.first_window")
            if first is not None and not first[1].equals(rows_of_first()):
                raise TimelineError(f"backfill wrote the window at {first[0]:%Y-%m-%d %H:%M} from its own rows, "
                                   "and they differ from the whole timeline's: a bug in history.first_window")
            for future in concurrent.futures.as_completed(futures.values()):
                bar.item(future.result().path)
                bar.advance()
        except BaseException:  # a failed window, Ctrl-C or SIGTERM: stop the other promtool runs now
            stopping.set()  # before kill_all: a promtool registered after its snapshot sees it and is killed
            for future in futures.values():
                future.cancel()
            children.kill_all()
            raise
    return Converted(tuple(futures[start].result() for start in sorted(futures)), written_at - started,
                     time.perf_counter() - started)


def _windows(samples: pl.DataFrame, hours: int,
             extra_windows: dict[dt.datetime, pl.DataFrame]) -> list[tuple[dt.datetime, pl.Series | None]]:
    """Each window's start and its rows of ``samples`` (None: only extra families' lines), in order."""
    return sorted({**{start: None for start in extra_windows}, **dict(window_rows(samples, hours))}.items())


def _gather(samples: pl.DataFrame, rows: pl.Series | None) -> Callable[[], pl.DataFrame]:
    """The window's rows, gathered only when called (by the worker writing it: none held before)."""
    return lambda: samples.clear() if rows is None else samples[rows]


@dataclass
class _Written:
    """A window's file just written, and its sample frames in the file's order (openmetrics.family_parts
    of the timeline's lines, then of the extra families'), held only until :func:`_digested` takes
    their digest."""

    path: str  # relative to the output directory
    window_start: dt.datetime
    window_end: dt.datetime
    samples: int
    bytes: int
    parts: list[pl.DataFrame]


def _write_window(out: Path, part: pl.DataFrame, prefixes: pl.Series, start: dt.datetime, hours: int,
                  extra: tuple[pl.DataFrame | None, tuple[ExtraFamily, ...]],
                  spares: _SpareFiles, before_family: Callable[[], None] | None = None) -> _Written:
    """Render one window's text (timeline families, then extra families) into its file. Neither
    digest is taken here: the samples' (:func:`_digested`) once promtool has started, from the
    frames this returns; the text's (:func:`_hashed`) only of a file that is kept. ``spares``: a
    converted window's file, if one is free, becomes this window's file and is overwritten in
    place (see _SpareFiles). ``before_family``: called before each timeline family is rendered
    (openmetrics.write_samples)."""
    extra_lines, declared = extra
    path = f"{OPENMETRICS_DIR}/{start:%Y%m%dT%H%M%SZ}_{hours}h.om"
    # split once into the file's order: the writers and the digest take the same parts
    timeline_parts = family_parts(sample_lines(part, prefixes))
    extra_parts = family_parts(extra_lines) if extra_lines is not None else []
    reused = spares.move_to(out / path)
    # unbuffered: polars writes its parts through the same descriptor, in order with the headers
    with open(out / path, "r+b" if reused else "wb", buffering=0) as handle:
        write_samples(timeline_parts, handle, eof=False, before_family=before_family)
        write_family_samples(extra_parts, declared, handle)
        handle.write(EOF)
        handle.truncate()  # a reused file: its old text beyond the new end goes
        size = os.fstat(handle.fileno()).st_size
    parts = [frame for _, frame in (*timeline_parts, *extra_parts)]
    return _Written(path=path, window_start=start, window_end=start + dt.timedelta(hours=hours),
                    samples=sum(frame.height for frame in parts), bytes=size, parts=parts)


def _digested(written: _Written) -> WindowFile:
    """The window's file with its samples' digest (digest.samples_sha256), its text's sha256 left
    None (:func:`_hashed`). The frames are released as soon as they are hashed: a worker holds no
    rows while its promtool runs."""
    parts, written.parts = written.parts, []
    return WindowFile(path=written.path, window_start=written.window_start, window_end=written.window_end,
                      samples=written.samples, bytes=written.bytes, samples_sha256=samples_sha256(parts), sha256=None)


def _hashed(out: Path, info: WindowFile) -> WindowFile:
    """``info`` with the sha256 of its file, read back from the page cache (no second copy of the
    text is kept; hashing the chunks polars hands over cost as much, BENCHMARKS.md)."""
    return replace(info, sha256=file_sha256(out / info.path))


class _SpareFiles:
    """Converted window files, kept to be overwritten by the next window instead of removed.

    Writing text into the page cache pages of a file just converted costs about half the system
    CPU of writing into a new file's fresh pages (BENCHMARKS.md, session 8). A spare is a
    converted file renamed, so it still counts as text on disk; a worker makes a new file only
    when no spare is free, so there are never more files than workers, each no larger than the
    largest window it held: the disk bound is unchanged. Removed when its ``with`` block ends."""

    def __init__(self, directory: Path) -> None:
        self._directory, self._free, self._lock, self._made = directory, [], threading.Lock(), 0

    def __enter__(self) -> _SpareFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def give(self, path: Path) -> None:
        with self._lock:
            self._made += 1
            spare = self._directory / f"spare-{self._made}.om"  # counted as .om text, like any window
            os.replace(path, spare)
            self._free.append(spare)

    def move_to(self, path: Path) -> bool:
        """Rename a free spare to ``path``; False when none is free. The spare leaves the free
        list only once renamed, so a failure before leaves it to remove()."""
        with self._lock:
            if not self._free:
                return False
            os.replace(self._free[-1], path)
            self._free.pop()
            return True

    def remove(self) -> None:
        with self._lock:
            for spare in self._free:
                os.remove(spare)
            self._free.clear()


def _run_promtool(tool: str, out: Path, path: str, hours: int, stop: threading.Event, *,
                  on_start: Callable[[], None]) -> tuple[str, ...]:
    """Run promtool on the window file ``path`` into a private directory (it leaves chunks_head/
    there; its own temporary files go there too, via TMPDIR), then move its block(s) into
    ``blocks/`` and return their ULIDs. ``on_start`` is called once promtool has started (promtool
    does not wait for it: the window's digests are taken there, off the path to its start). Not
    started once ``stop`` is set (the run is failing or interrupted)."""
    staging = out / BLOCKS_DIR / f".promtool-{Path(path).stem}"
    (staging / "tmp").mkdir(parents=True)
    command = promtool_command(out / path, staging, hours, tool)

    def started() -> None:  # children.run calls it once promtool runs, before it returns
        fault_point("backfill:promtool-running")
        on_start()

    done = children.run([*command[:-1], "--quiet", command[-1]], env={**os.environ, "TMPDIR": str(staging / "tmp")},
                        on_start=started, stop=stop)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise TimelineError(f"promtool failed on {path}: {message[-1] if message else done.returncode}")
    ulids = sorted(p.name for p in staging.iterdir() if ULID.match(p.name))
    for ulid in ulids:
        os.replace(staging / ulid, out / BLOCKS_DIR / ulid)
    shutil.rmtree(staging)
    return tuple(ulids)


def _verify_blocks(blocks_dir: Path, info: WindowFile) -> None:
    """The window's block(s) hold every sample of its file, inside the window; else TimelineError
    (promtool drops some out-of-order or duplicate samples silently: reference §1.2)."""
    start_ms, end_ms = epoch_of(info.window_start) * 1000, epoch_of(info.window_end) * 1000
    samples = 0
    for ulid in info.blocks:
        try:
            meta = json.loads((blocks_dir / ulid / "meta.json").read_text())
            low, high, count = int(meta["minTime"]), int(meta["maxTime"]), int(meta["stats"]["numSamples"])
        except (OSError, ValueError, KeyError, TypeError):
            raise TimelineError(f"promtool made block {ulid} from {info.path} without a readable meta.json") from None
        if low < start_ms or high > end_ms:
            raise TimelineError(f"promtool made block {ulid} from {info.path} reaching outside its window")
        samples += count
    if samples != info.samples:
        raise TimelineError(f"promtool's block(s) from {info.path} hold {samples} samples, the file "
                            f"{info.samples} (promtool dropped or added samples)")
