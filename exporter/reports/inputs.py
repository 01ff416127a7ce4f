"""Finding and reading a reconstruction's outputs for the reports: the directory that holds
``timeline.parquet`` and ``audit.json`` (``reconstruct --out OUT``, or ``run``'s ``OUT/timeline``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.errors import TimelineError
from exporter.layout import read_audit, read_timeline, reconstruction_dir


@dataclass(frozen=True)
class Reconstruction:
    directory: Path
    timeline: pl.DataFrame
    audit: dict

    @property
    def step_seconds(self) -> int:
        return int(self.audit.get("timeline", {}).get("step_seconds") or _step_from(self.timeline))

    @property
    def snapshot_dir(self) -> Path | None:
        recorded = self.audit.get("snapshot_dir")
        return Path(recorded) if recorded else None


def load_reconstruction(out: str | Path) -> Reconstruction:
    directory = reconstruction_dir(out)
    return Reconstruction(directory, read_timeline(directory), read_audit(directory))


def _step_from(timeline: pl.DataFrame) -> int:
    stamps = timeline["timestamp"].unique().sort()
    if stamps.len() < 2:
        raise TimelineError("cannot tell the timeline's step from fewer than two timestamps")
    return int(stamps.diff().drop_nulls().min().total_seconds())
