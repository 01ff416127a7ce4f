"""One block window at a time: OpenMetrics text -> file -> promtool block -> block verified -> file removed.

One thread renders each window's text in memory, running ahead while promtool runs; each of
``workers`` threads takes a rendered window, writes its file, runs promtool on it, checks the
block against the window (sample count, time range) and deletes the file (unless asked to keep
it). So at any moment at most ``workers`` window files exist: the extra disk of a run, beyond its
blocks, is bounded by the text of the windows in flight, not by the whole history
(docs/backfill.md); at most ``workers`` rendered windows wait in memory.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from exporter import children
from exporter.backfill.history import epoch_of, split_windows, window_rows
from exporter.backfill.families import write_family_samples
from exporter.backfill.openmetrics import EOF, sample_lines, sample_prefixes, write_samples
from exporter.errors import TimelineError
from exporter.faults import fault_point
from exporter.layout import BLOCKS_DIR, OPENMETRICS_DIR
from exporter.metrics import ExtraFamily
from exporter.progress import Progress

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class WindowFile:
    """One OpenMetrics file: the samples of one block window."""

    path: str  # relative to the output directory
    window_start: dt.datetime
    window_end: dt.datetime
    samples: int
    bytes: int
    sha256: str
    blocks: tuple[str, ...] = ()  # ULIDs promtool created from this file
    kept: bool = True  # False: removed once its block was verified


@dataclass(frozen=True)
class Converted:
    files: tuple[WindowFile, ...]  # in window order
    write_seconds: float  # wall time until every file was written
    seconds: float  # wall time of the whole stage


def promtool_command(om_file: Path, blocks_dir: Path, hours: int, promtool: str | None = None) -> tuple[str, ...]:
    """The exact promtool invocation turning one window file into one block."""
    return (promtool or "promtool", "tsdb", "create-blocks-from", "openmetrics",
            f"--max-block-duration={hours}h", str(om_file), str(blocks_dir))


def write_and_convert(samples: pl.DataFrame, series: pl.DataFrame, out: Path, *, hours: int, tool: str | None,
                      workers: int | None, keep_openmetrics: bool, progress: Progress,
                      extra: tuple[pl.DataFrame, tuple[ExtraFamily, ...]] | None = None) -> Converted:
    """Write the window files; with ``tool``, convert each one as soon as it is written, verify its
    block and (unless ``keep_openmetrics``) remove the file. ``extra``: the extra families' lines
    (exporter.backfill.families.family_lines) and their declarations, written into the same
    windows after the timeline's families.

    The schedule: one thread renders each window's text in memory (ours: CPU), ``workers``
    threads each write a rendered window to disk, run promtool on it (a child: CPU), verify and
    remove it. Rendering runs ahead while promtool runs, but at most ``workers`` rendered windows
    wait in memory, and only the converting threads put text on disk: the disk bound stays the
    text of the windows being converted (docs/backfill.md)."""
    extra_lines, declared = extra if extra is not None else (None, ())
    extra_windows = dict(split_windows(extra_lines, hours)) if extra_lines is not None else {}
    windows = sorted({**{start: None for start in extra_windows}, **dict(window_rows(samples, hours))}.items())
    (out / OPENMETRICS_DIR).mkdir(parents=True, exist_ok=True)
    prefixes = sample_prefixes(series)
    workers = workers or os.cpu_count() or 1
    waiting, stop = threading.BoundedSemaphore(workers), threading.Event()
    started = time.perf_counter()
    written_at = started

    def render(start: dt.datetime, rows: pl.Series | None) -> _Rendered:
        while not stop.is_set():
            if waiting.acquire(timeout=0.1):  # a slot in memory: a converter wrote its window
                break
        else:
            raise concurrent.futures.CancelledError()
        part = samples.clear() if rows is None else samples[rows]  # gathered here: only the windows in flight
        return _render_window(sample_lines(part, prefixes), start, hours, extra=(extra_windows.get(start), declared))

    def convert(rendered: concurrent.futures.Future) -> WindowFile:
        nonlocal written_at
        info = rendered.result().write_file(out)
        waiting.release()
        fault_point("backfill:after-openmetrics")
        written_at = max(written_at, time.perf_counter())
        if not tool:
            return info
        info = replace(info, blocks=_run_promtool(tool, out, info, hours))
        _verify_blocks(out / BLOCKS_DIR, info)
        if keep_openmetrics:
            return info
        os.remove(out / info.path)
        return replace(info, kept=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as renderer, \
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool, \
            progress.stage("write OpenMetrics" + (" + promtool blocks" if tool else ""), total=len(windows)) as bar:
        rendered = [renderer.submit(render, start, rows) for start, rows in windows]
        futures = [pool.submit(convert, text) for text in rendered]
        try:
            for future in concurrent.futures.as_completed(futures):
                bar.item(future.result().path)
                bar.advance()
        except BaseException:  # a failed window, Ctrl-C or SIGTERM: stop the other promtool runs now
            stop.set()
            for future in rendered + futures:
                future.cancel()
            children.kill_all()
            raise
    return Converted(tuple(f.result() for f in futures), written_at - started, time.perf_counter() - started)


class _Rendered:
    """One window's text, rendered in memory as the chunks the writer produced (a growing BytesIO
    would copy the whole text again at each resize), hashed on the way; held until it is written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.sha256, self.bytes = hashlib.sha256(), 0
        self.info: WindowFile | None = None

    def write(self, data) -> int:
        chunk = bytes(data)  # the writer may hand out a view of a buffer it reuses
        self.chunks.append(chunk)
        self.sha256.update(chunk)
        self.bytes += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def write_file(self, out: Path) -> WindowFile:
        """Write the text to its file and let go of it."""
        with open(out / self.info.path, "wb") as handle:
            handle.writelines(self.chunks)
        self.chunks = []
        return self.info


def _render_window(lines: pl.DataFrame, start: dt.datetime, hours: int,
                   extra: tuple[pl.DataFrame | None, tuple[ExtraFamily, ...]]) -> _Rendered:
    """One window's text (timeline families, then extra families) and its sha256."""
    extra_lines, declared = extra
    text = _Rendered()
    write_samples(lines, text, eof=False)
    if extra_lines is not None:
        write_family_samples(extra_lines, declared, text)
    text.write(EOF)
    samples = lines.height + (extra_lines.height if extra_lines is not None else 0)
    text.info = WindowFile(path=f"{OPENMETRICS_DIR}/{start:%Y%m%dT%H%M%SZ}_{hours}h.om", window_start=start,
                           window_end=start + dt.timedelta(hours=hours), samples=samples, bytes=text.bytes,
                           sha256=text.sha256.hexdigest())
    return text


def _run_promtool(tool: str, out: Path, info: WindowFile, hours: int) -> tuple[str, ...]:
    """Run promtool into a private directory (it leaves chunks_head/ there; its own temporary
    files go there too, via TMPDIR), then move its block(s) into ``blocks/``."""
    staging = out / BLOCKS_DIR / f".promtool-{Path(info.path).stem}"
    (staging / "tmp").mkdir(parents=True)
    command = promtool_command(out / info.path, staging, hours, tool)
    done = children.run([*command[:-1], "--quiet", command[-1]], env={**os.environ, "TMPDIR": str(staging / "tmp")},
                        on_start=lambda: fault_point("backfill:promtool-running"))
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise TimelineError(f"promtool failed on {info.path}: {message[-1] if message else done.returncode}")
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
