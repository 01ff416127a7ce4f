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

import dataclasses
import datetime as dt
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.backfill.history import History, history_opening, iso
from exporter.backfill.windows import WindowFile, promtool_command, write_and_convert
from exporter.config import DEFAULT_HOLDBACK_HOURS
from exporter.errors import TimelineError, ToolMissing
from exporter.layout import BACKFILL_MANIFEST, BLOCKS_DIR, OPENMETRICS_DIR
from exporter.backfill.families import family_counts
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB, EXTRA_FAMILIES, ExtraFamily
from exporter.progress import SILENT, Progress
from exporter.publish import staged_directory

__all__ = ["BackfillResult", "WindowFile", "backfill", "block_hours_for", "promtool_command", "require_blocks"]

# promtool's block durations: ExponentialBlockRanges(2h, 10, 3) (reference §1.1)
BLOCK_HOURS = (2, 6, 18, 54, 162, 486, 1458, 4374, 13122, 39366)
DEFAULT_BLOCK_HOURS = 1458  # ~61 days: ~60 files for 10 years, each parsed twice by promtool
MIMIR_BLOCK_HOURS = 6  # Mimir rejects blocks longer than 24h or crossing a day; 6h never does
DEFAULT_HOLDBACK = dt.timedelta(hours=DEFAULT_HOLDBACK_HOURS)
OWNED = (OPENMETRICS_DIR, BLOCKS_DIR, BACKFILL_MANIFEST)  # everything backfill writes into --out


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
    # wall time from the write stage's start until every OpenMetrics file was written; with a first
    # window written alone, it includes the whole timeline's check and sums (they overlap that window)
    write_seconds: float = 0.0
    promtool_seconds: float = 0.0  # wall time of the whole write + promtool stage (runs overlap), likewise
    blocks_requested: bool = False
    families: dict[str, dict[str, int]] | None = None  # extra family name -> {series, samples} written

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
             now: dt.datetime | None = None, workers: int | None = None, keep_openmetrics: bool = False,
             progress: Progress | None = None, declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> BackfillResult:
    """Write one OpenMetrics file per block window (and with ``blocks``, TSDB blocks) under ``out_dir``.

    Files: ``openmetrics/<window start>_<hours>h.om``, ``blocks/<ULID>/`` and ``backfill.json``.
    With blocks made, each file is set aside once its block is verified, to be overwritten by a
    later window, and the files set aside are removed at the end, unless ``keep_openmetrics`` (the
    manifest still lists each window's size and its samples' sha256; the text's sha256 only for a
    file kept). Without ``blocks``, or when promtool is
    missing, the files stay and the promtool commands are in the result (``commands``); a missing
    promtool with ``blocks=True`` leaves ``blocks_created`` False (the caller reports it: see
    :func:`require_blocks`). ``now`` defaults to the current UTC time. The extra series families
    stored beside the timeline (``families/``, ``declared`` in exporter.metrics) go into the same
    window files, cut off at the same time.

    Errors come in the whole check's order but for one: when the first window is written beside
    the dense check, ``out_dir`` is claimed (made, refused if foreign or locked: OutputError) before
    that check, so a timeline failing it into such a directory reports the OutputError.
    """
    progress = progress or SILENT
    hours = block_hours_for(mimir=mimir, requested=block_hours)
    opened = history_opening(timeline_dir, holdback=holdback, job=job, instance=instance, origin=origin, now=now,
                             declared=declared, hours=hours)
    # without a first window computed alone, the whole timeline is checked before anything is written
    history = opened if isinstance(opened, History) else None if opened.first else opened.history()
    if history is not None:  # checked whole: the opening's raw timeline frame is not needed any more
        opened = None

    def whole_samples() -> pl.DataFrame:
        """The whole history's samples; the opening (its raw timeline frame) is let go of here."""
        nonlocal history, opened
        history, opened = opened.history(), None
        return history.samples

    out = Path(out_dir)
    tool = _find_promtool(promtool) if blocks else None
    with staged_directory(out, owned=OWNED, stage="backfill") as staging:
        if history is None:  # the first window converts while the rest of the timeline is checked and summed
            converted = write_and_convert(whole_samples, opened.series, staging, hours=hours, tool=tool,
                                          workers=workers, keep_openmetrics=keep_openmetrics, progress=progress,
                                          extra=(opened.families, opened.declared), first=opened.first,
                                          total=opened.windows)
        else:
            converted = write_and_convert(history.samples, history.series, staging, hours=hours, tool=tool,
                                          workers=workers, keep_openmetrics=keep_openmetrics, progress=progress,
                                          extra=(history.families, history.declared))
        result = _result(history, out, converted.files, job=job, instance=instance, hours=hours, holdback=holdback,
                         tool=tool, promtool=promtool, blocks=blocks)
        result = dataclasses.replace(result, write_seconds=converted.write_seconds,
                                     promtool_seconds=converted.seconds if tool else 0.0)
        _write_manifest(result, staging)
    return result


def _result(history: History, out: Path, files: tuple[WindowFile, ...], *, job: str, instance: str, hours: int,
            holdback: dt.timedelta, tool: str | None, promtool: str | None, blocks: bool) -> BackfillResult:
    return BackfillResult(
        out_dir=out, timeline_path=history.timeline_path, job=job, instance=instance,
        step_seconds=history.step_seconds, block_hours=hours, holdback=holdback, cutoff=history.cutoff,
        first_sample=history.first_sample, last_sample=history.last_sample, origins=history.origins,
        series=history.series.height, samples=history.samples.height, negative_samples=history.negative_samples,
        files=files, commands=tuple(promtool_command(out / f.path, out / BLOCKS_DIR, hours, tool or promtool)
                                    for f in files),
        blocks_created=tool is not None, blocks_requested=blocks, promtool=tool,
        families=family_counts(history.families, history.declared))


def require_blocks(result: BackfillResult) -> None:
    """Raise ToolMissing when blocks were asked for but promtool was not found."""
    if result.blocks_requested and not result.blocks_created:
        raise ToolMissing(f"promtool not found; the OpenMetrics files are in {result.out_dir / OPENMETRICS_DIR}: "
                          "run the promtool commands printed above (package `prometheus` on Debian)")


def _find_promtool(promtool: str | None) -> str | None:
    if promtool:
        path = shutil.which(promtool)
        return path if path and os.access(path, os.X_OK) else None
    return shutil.which("promtool")


def _write_manifest(result: BackfillResult, directory: Path) -> None:
    """``backfill.json``: where history ends (cut-off) and what was written, for the live exporter."""
    document = {
        "format": 2,  # 2: samples_sha256 per window, and sha256 (of the text) null for a file not kept
        "job": result.job,
        "instance": result.instance,
        "step_seconds": result.step_seconds,
        "block_hours": result.block_hours,
        "holdback_seconds": int(result.holdback.total_seconds()),
        "cutoff": iso(result.cutoff),
        "first_sample": iso(result.first_sample),
        "last_sample": iso(result.last_sample),
        "origins": {site: iso(t) for site, t in sorted(result.origins.items())},
        "series": result.series,
        "samples": result.samples,
        "negative_samples": result.negative_samples,
        "families": result.families or {},
        "blocks": len(result.blocks) if result.blocks_created else None,
        "files": [{"path": f.path, "window_start": iso(f.window_start), "window_end": iso(f.window_end),
                   "samples": f.samples, "bytes": f.bytes, "samples_sha256": f.samples_sha256, "sha256": f.sha256,
                   "blocks": list(f.blocks),
                   "kept": f.kept}
                  for f in result.files],
    }
    (directory / BACKFILL_MANIFEST).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def shell_line(command: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(part) for part in command)
