"""Finding and reading a reconstruction's outputs for the reports: the directory that holds
``timeline.parquet`` and ``audit.json`` (``reconstruct --out OUT``, or ``run``'s ``OUT/timeline``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.layout import read_timeline
from exporter.errors import TimelineError


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


def timeline_directory(out: str | Path) -> Path:
    """``out`` itself when it holds timeline.parquet, else ``out/timeline`` (the layout of ``run``)."""
    out = Path(out)
    if (out / "timeline.parquet").exists() or not (out / "timeline" / "timeline.parquet").exists():
        return out
    return out / "timeline"


def read_audit(directory: Path) -> dict:
    path = directory / "audit.json"
    if not path.exists():
        raise TimelineError(f"no audit.json in {directory} (is it a `usage-exporter reconstruct` output?)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TimelineError(f"cannot read {path}: {str(err).splitlines()[0][:200]}") from None


def load_reconstruction(out: str | Path) -> Reconstruction:
    directory = timeline_directory(out)
    return Reconstruction(directory, read_timeline(directory), read_audit(directory))


def _step_from(timeline: pl.DataFrame) -> int:
    stamps = timeline["timestamp"].unique().sort()
    if stamps.len() < 2:
        raise TimelineError("cannot tell the timeline's step from fewer than two timestamps")
    return int(stamps.diff().drop_nulls().min().total_seconds())
