"""Explaining a cell of a reconstruct output: the grid from audit.json, lazy filtered reads.

Only the rows that can matter are read: spans and rejected rows overlapping the cell (a time
predicate the parquet scan pushes down, then the labels), and the timeline rows of the cell's
timestamp for the selected labels. A 500-host x 10-year output answers in well under 2 s
(BENCHMARKS.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from exporter.errors import TimelineError
from exporter.explain.answer import Selection, answer, family_of, span_columns
from exporter.explain.cell import Window, overlapping

LEAF_COLUMNS = ("node_type", "pool", "state", "resource", "value")


@dataclass(frozen=True)
class Grid:
    """The timeline grid an output was built on: cells start + k x step, k < cells."""

    site: str
    start: dt.datetime
    end: dt.datetime  # the requested end; the last cell may reach past it
    step: dt.timedelta
    snapshot_time: dt.datetime  # null span ends were closed here

    @property
    def cells(self) -> int:
        return -(-(self.end - self.start) // self.step)

    def cell(self, at: dt.datetime) -> Window:
        """The cell holding ``at``; TimelineError outside the grid."""
        index = (at - self.start) // self.step
        if at < self.start or index >= self.cells:
            raise TimelineError(f"{at:%Y-%m-%dT%H:%M:%S} is outside the timeline of site {self.site} "
                                f"({self.start:%Y-%m-%dT%H:%M:%S} .. {self.start + self.cells * self.step:%Y-%m-%dT%H:%M:%S})")
        start = self.start + index * self.step
        return Window(start, start + self.step, self.snapshot_time)


def grid_of(audit: dict) -> Grid:
    try:
        timeline = audit["timeline"]
        return Grid(site=str(audit["site"]), start=dt.datetime.fromisoformat(timeline["start"]),
                    end=dt.datetime.fromisoformat(timeline["end"]),
                    step=dt.timedelta(seconds=int(timeline["step_seconds"])),
                    snapshot_time=dt.datetime.fromisoformat(audit["snapshot_time"]))
    except (KeyError, TypeError, ValueError) as err:
        raise TimelineError(f"audit.json lacks the timeline grid ({type(err).__name__}: {err})") from None


def explain_cell(directory: Path, audit: dict, at: dt.datetime, selection: Selection, *,
                 limit: int | None = None, offset: int = 0) -> dict:
    grid = grid_of(audit)
    if selection.site is not None and selection.site != grid.site:
        raise TimelineError(f"{directory} holds site {grid.site}, not {selection.site}")
    window = grid.cell(at)
    selection = replace(selection, site=grid.site)
    selection, family = family_of(selection)
    files = DEVICE_FILES if family else OUTPUT_FILES  # the devices family: device spans and timeline
    if family and not (directory / files[0]).exists():
        raise TimelineError(f"{directory} has no {files[0]}: site {grid.site} has no devices")
    spans_file, rejected_file, timeline_file = (directory / name for name in files)
    spans = _read(spans_file, lambda scan: overlapping(scan.select(span_columns(scan.collect_schema().names())), window)
                  .filter(selection.span_filter()))
    rejected = _read(rejected_file, lambda scan: overlapping(scan, window)) if rejected_file.exists() else None
    leaves = _read(timeline_file, lambda scan: _cell_leaves(scan, window, selection))
    result = answer(spans, leaves, selection=selection, window=window, rejected=rejected, limit=limit, offset=offset)
    return {"source": "history", "output": str(directory), "site": grid.site, **family,
            "requested_at": at.isoformat(),
            "cell": {"start": window.start.isoformat(), "end": window.end.isoformat(),
                     "step_seconds": int(grid.step.total_seconds()),
                     "open_spans_closed_at": grid.snapshot_time.isoformat()},
            **result}


OUTPUT_FILES = ("spans.parquet", "rejected.parquet", "timeline.parquet")
DEVICE_FILES = ("device_spans.parquet", "rejected.parquet", "device_timeline.parquet")


def _cell_leaves(scan: pl.LazyFrame, window: Window, selection: Selection) -> pl.LazyFrame:
    labels = scan.filter(pl.col("timestamp") == window.start).select(
        *(pl.col(c).cast(pl.String) for c in ("site", *LEAF_COLUMNS[:-1])), "value")
    if selection.node_types is not None:
        labels = labels.filter(pl.col("node_type").is_in(list(selection.node_types)))
    return labels.filter(pl.col("resource") == selection.resource).select(LEAF_COLUMNS)


def _read(path: Path, query) -> pl.DataFrame:
    if not path.exists():
        raise TimelineError(f"no {path.name} in {path.parent} (is it a `usage-exporter reconstruct` output?)")
    try:
        return query(pl.scan_parquet(path)).collect()
    except (OSError, pl.exceptions.PolarsError) as err:
        raise TimelineError(f"cannot read {path}: {str(err).splitlines()[0][:200]}") from None
