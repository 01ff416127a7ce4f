"""Synthetic timelines with values known from a formula (for the backfill tests)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from exporter.columns import TIMELINE_SCHEMA

LEAVES = (("reservable", "available"), ("reservable", "maintenance"), ("reservable", "idle"),
          ("reservable", "active"), ("reservable", "stopped"), ("ondemand", "available"),
          ("ondemand", "active"), ("ondemand", "stopped"))
SCALES = {"nodes": 1.0, "vcpus": 48.0, "memory_bytes": 192.0 * 2**30, "disk_bytes": 240.0 * 2**30, "gpus": 4.0}


def expected_value(hour_index: int, series_index: int, scale: float) -> float:
    """The value of series ``series_index`` at grid point ``hour_index``: small integers or halves."""
    return ((hour_index * (series_index + 3) + series_index) % 11) / 2 * scale


def synthetic_timeline(*, start: dt.datetime, hours: int, node_types=("compute_skylake", "gpu_a100"),
                       resources=tuple(SCALES), site: str = "uc", step_hours: int = 1) -> pl.DataFrame:
    """A dense timeline (TIMELINE_SCHEMA) whose values follow :func:`expected_value`."""
    grid = [start + dt.timedelta(hours=h * step_hours) for h in range(hours)]
    frames = []
    index = 0
    for node_type in node_types:
        for pool, state in LEAVES:
            for resource in resources:
                values = [expected_value(h, index, SCALES[resource]) for h in range(hours)]
                frames.append(pl.DataFrame({"site": site, "timestamp": grid, "node_type": node_type, "pool": pool,
                                            "state": state, "resource": resource, "value": values}))
                index += 1
    return pl.concat(frames).select(pl.col(n).cast(t) for n, t in TIMELINE_SCHEMA.items())


def write_timeline(frame: pl.DataFrame, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(directory / "timeline.parquet")
    return directory
