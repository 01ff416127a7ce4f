"""Timeline directory -> OpenMetrics files (one per block window) -> promtool TSDB blocks.

promtool re-parses its whole input once per block window (docs/backfill.md, reference §1.1), so
the timeline is split into epoch-aligned windows whose length is a promtool block duration and
each window gets its own file and its own promtool run with a matching ``--max-block-duration``:
one file yields one block, and total time grows linearly with history. Runs go in parallel.

The newest ``holdback`` of history is never written: samples at or after
``cutoff = min(now, end of timeline) - holdback`` are left to the live exporter, so no backfilled
range can already have been scraped. ``backfill.json`` records the cut-off, files and blocks.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from exporter import children
from exporter.config import DEFAULT_HOLDBACK_HOURS
from exporter.errors import TimelineError, ToolMissing
from exporter.layout import BACKFILL_MANIFEST, BLOCKS_DIR, OPENMETRICS_DIR, read_timeline
from exporter.faults import fault_point
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB
from exporter.backfill.openmetrics import (checked_timeline, sample_lines, sample_prefixes, sample_values, series_labels,
                                  write_samples)
from exporter.timeutil import utc_now
from exporter.progress import SILENT, Progress
from exporter.publish import staged_directory

# promtool's block durations: ExponentialBlockRanges(2h, 10, 3) (reference §1.1)
BLOCK_HOURS = (2, 6, 18, 54, 162, 486, 1458, 4374, 13122, 39366)
DEFAULT_BLOCK_HOURS = 1458  # ~61 days: ~60 files for 10 years, each parsed twice by promtool
MIMIR_BLOCK_HOURS = 6  # Mimir rejects blocks longer than 24h or crossing a day; 6h never does
DEFAULT_HOLDBACK = dt.timedelta(hours=DEFAULT_HOLDBACK_HOURS)
OWNED = (OPENMETRICS_DIR, BLOCKS_DIR, BACKFILL_MANIFEST)  # everything backfill writes into --out
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


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


@dataclass(frozen=True)
class BackfillResult:
    out_dir: Path
    timeline_path: Path
    job: str
    instance: str
    step_seconds: int
    block_hours: int
    holdback: dt.timedelta
    cutoff: dt.datetime  # first time NOT backfilled; the live exporter owns [cutoff, ...)
    first_sample: dt.datetime
    last_sample: dt.datetime
    origins: dict[str, dt.datetime]  # site -> counters' origin (first grid time)
    series: int
    samples: int
    negative_samples: int  # gauge samples < 0 (data anomalies kept by reconstruct)
    files: tuple[WindowFile, ...]
    commands: tuple[tuple[str, ...], ...]  # the promtool commands, one per file
    blocks_created: bool = False
    promtool: str | None = None
    write_seconds: float = 0.0  # writing the OpenMetrics files
    promtool_seconds: float = 0.0  # wall time of the whole write + promtool stage (runs overlap)
    blocks_requested: bool = False

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(ulid for f in self.files for ulid in f.blocks)

    @property
    def blocks_dir(self) -> Path:
        return self.out_dir / BLOCKS_DIR


def block_hours_for(*, mimir: bool = False, requested: int | None = None) -> int:
    """The block (= file window) length in hours: a promtool block duration."""
    hours = requested or (MIMIR_BLOCK_HOURS if mimir else DEFAULT_BLOCK_HOURS)
    if hours not in BLOCK_HOURS:
        raise TimelineError(f"block duration {hours}h is not one promtool can make "
                            f"({', '.join(f'{h}h' for h in BLOCK_HOURS)})")
    if mimir and hours > 24:
        raise TimelineError(f"Mimir accepts blocks of at most 24h; {hours}h was asked")
    return hours


def backfill(timeline_dir: str | Path, out_dir: str | Path, *, blocks: bool = False, promtool: str | None = None,
             holdback: dt.timedelta = DEFAULT_HOLDBACK, job: str = DEFAULT_JOB, instance: str = DEFAULT_INSTANCE,
             mimir: bool = False, block_hours: int | None = None, origin: dt.datetime | None = None,
             now: dt.datetime | None = None, workers: int | None = None,
             progress: Progress | None = None) -> BackfillResult:
    """Write one OpenMetrics file per block window (and with ``blocks``, TSDB blocks) under ``out_dir``.

    Files: ``openmetrics/<window start>_<hours>h.om``, ``blocks/<ULID>/`` and ``backfill.json``.
    Without ``blocks``, or when promtool is missing, the promtool commands are in the result
    (``commands``); a missing promtool with ``blocks=True`` leaves ``blocks_created`` False (the
    caller reports it: see :func:`require_blocks`). ``now`` defaults to the current UTC time.
    """
    progress = progress or SILENT
    timeline_path = Path(timeline_dir)
    hours = block_hours_for(mimir=mimir, requested=block_hours)
    checked = checked_timeline(read_timeline(timeline_path))
    now = now or utc_now()
    cutoff = min(now, max(checked.ends.values())) - holdback
    series = series_labels(checked, job=job, instance=instance)
    kept = sample_values(checked, origin=origin).filter(pl.col("t") < _epoch(cutoff))
    origins, step_seconds = checked.starts, checked.step_seconds
    del checked  # the timeline frame is no longer needed: keep peak memory down while writing
    if kept.height == 0:
        raise TimelineError(f"nothing to backfill: the whole timeline is at or after the cut-off "
                            f"{cutoff:%Y-%m-%d %H:%M} (holdback {_hours(holdback)})")
    out = Path(out_dir)
    tool = _find_promtool(promtool) if blocks else None
    with staged_directory(out, owned=OWNED, stage="backfill") as staging:
        files, write_seconds, promtool_seconds = _write_and_convert(
            kept, series, staging, hours=hours, tool=tool, workers=workers, progress=progress)
        result = BackfillResult(
            out_dir=out, timeline_path=timeline_path, job=job, instance=instance,
            step_seconds=step_seconds, block_hours=hours, holdback=holdback, cutoff=cutoff,
            first_sample=_datetime(kept["t"].min()), last_sample=_datetime(kept["t"].max()),
            origins=origins, series=series.height, samples=kept.height,
            negative_samples=kept.filter((pl.col("family") % 2 == 0) & (pl.col("value") < 0)).height,
            files=files, commands=tuple(promtool_command(out / f.path, out / BLOCKS_DIR, hours, tool or promtool)
                                        for f in files),
            blocks_created=tool is not None, blocks_requested=blocks, promtool=tool, write_seconds=write_seconds,
            promtool_seconds=promtool_seconds if tool else 0.0,
        )
        _write_manifest(result, staging)
    return result


def require_blocks(result: BackfillResult) -> None:
    """Raise ToolMissing when blocks were asked for but promtool was not found."""
    if result.blocks_requested and not result.blocks_created:
        raise ToolMissing(f"promtool not found; the OpenMetrics files are in {result.out_dir / OPENMETRICS_DIR}: "
                          "run the promtool commands printed above (package `prometheus` on Debian)")


def promtool_command(om_file: Path, blocks_dir: Path, hours: int, promtool: str | None = None) -> tuple[str, ...]:
    """The exact promtool invocation turning one window file into one block."""
    return (promtool or "promtool", "tsdb", "create-blocks-from", "openmetrics",
            f"--max-block-duration={hours}h", str(om_file), str(blocks_dir))


def _write_and_convert(samples: pl.DataFrame, series: pl.DataFrame, out: Path, *, hours: int, tool: str | None,
                       workers: int | None, progress: Progress) -> tuple[tuple[WindowFile, ...], float, float]:
    """Write the window files in parallel; with ``tool``, convert each one as soon as it is written.

    Returns the files (in window order), the wall time until every file was written, and the
    wall time of the whole stage.
    """
    window_seconds = hours * 3600
    windows = sorted(samples.with_columns(window=pl.col("t") // window_seconds).partition_by(
        "window", maintain_order=True, include_key=False, as_dict=True).items())
    (out / OPENMETRICS_DIR).mkdir(parents=True, exist_ok=True)
    prefixes = sample_prefixes(series)
    started = time.perf_counter()
    written_at = started

    def write_and_convert(window: int, part: pl.DataFrame) -> WindowFile:
        nonlocal written_at
        info = _write_window(sample_lines(part, prefixes), out, _datetime(window * window_seconds), hours)
        fault_point("backfill:after-openmetrics")
        written_at = max(written_at, time.perf_counter())
        return WindowFile(**{**asdict(info), "blocks": _run_promtool(tool, out, info, hours)}) if tool else info

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool, \
            progress.stage("write OpenMetrics" + (" + promtool blocks" if tool else ""), total=len(windows)) as bar:
        futures = [pool.submit(write_and_convert, window, part) for (window,), part in windows]
        try:
            for future in concurrent.futures.as_completed(futures):
                bar.item(future.result().path)
                bar.advance()
        except BaseException:  # a failed window, Ctrl-C or SIGTERM: stop the other promtool runs now
            for future in futures:
                future.cancel()
            children.kill_all()
            raise
    return tuple(f.result() for f in futures), written_at - started, time.perf_counter() - started


def _write_window(lines: pl.DataFrame, out: Path, start: dt.datetime, hours: int) -> WindowFile:
    """Write one window file into the staging directory, hashing it on the way."""
    relative = f"{OPENMETRICS_DIR}/{start:%Y%m%dT%H%M%SZ}_{hours}h.om"
    with open(out / relative, "wb") as handle:
        sink = _HashingWriter(handle)
        write_samples(lines, sink)
    return WindowFile(path=relative, window_start=start, window_end=start + dt.timedelta(hours=hours),
                      samples=lines.height, bytes=sink.bytes, sha256=sink.sha256.hexdigest())


class _HashingWriter:
    """A binary writer that passes data through to ``handle`` and keeps its sha256 and size."""

    def __init__(self, handle) -> None:
        self.handle, self.sha256, self.bytes = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


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
    ulids = sorted(p.name for p in staging.iterdir() if _ULID.match(p.name))
    for ulid in ulids:
        os.replace(staging / ulid, out / BLOCKS_DIR / ulid)
    shutil.rmtree(staging)
    return tuple(ulids)


def _find_promtool(promtool: str | None) -> str | None:
    if promtool:
        path = shutil.which(promtool)
        return path if path and os.access(path, os.X_OK) else None
    return shutil.which("promtool")


def _write_manifest(result: BackfillResult, directory: Path) -> None:
    """``backfill.json``: where history ends (cut-off) and what was written, for the live exporter."""
    document = {
        "format": 1,
        "job": result.job,
        "instance": result.instance,
        "step_seconds": result.step_seconds,
        "block_hours": result.block_hours,
        "holdback_seconds": int(result.holdback.total_seconds()),
        "cutoff": _iso(result.cutoff),
        "first_sample": _iso(result.first_sample),
        "last_sample": _iso(result.last_sample),
        "origins": {site: _iso(t) for site, t in sorted(result.origins.items())},
        "series": result.series,
        "samples": result.samples,
        "negative_samples": result.negative_samples,
        "blocks": len(result.blocks) if result.blocks_created else None,
        "files": [{"path": f.path, "window_start": _iso(f.window_start), "window_end": _iso(f.window_end),
                   "samples": f.samples, "bytes": f.bytes, "sha256": f.sha256, "blocks": list(f.blocks)}
                  for f in result.files],
    }
    (directory / BACKFILL_MANIFEST).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def _epoch(moment: dt.datetime) -> int:
    return int((moment - dt.datetime(1970, 1, 1)).total_seconds())


def _datetime(seconds: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(seconds))


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"


def shell_line(command: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(part) for part in command)
