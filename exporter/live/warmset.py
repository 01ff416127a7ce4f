"""The saved set of a site's live state (layout: exporter.live.warm): written after each refresh,
read back by the first refresh after a start. The published values themselves are read by
exporter.live.warm, without polars, before the exporter imports this module.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.extract.tableread import TableRead
from exporter.extract.valuetypes import ColumnInfo
from exporter.live.state import RenderedUsage, Usage
from exporter.live.warm import FORMAT, PUBLISHED, STATE, published_text, saved_state
from exporter.metrics import EXTRA_FAMILIES
from exporter.publish import staged_directory

log = logging.getLogger("exporter.live")

TABLES = "tables"
CUTOFF_COUNTERS = "cutoff.counters.parquet"
CUTOFF_FAMILIES = "cutoff.families"
# what /explain of the present reads until the first refresh: the published values' spans and gauges
PRESENT = {"spans": "published.spans.parquet", "gauge_frame": "published.gauges.parquet",
           "device_spans": "published.device_spans.parquet"}
# what format 1 wrote besides those: a set of it is replaced by the first save, not refused
FORMER = ("published.counters.parquet",)
OWNED = (STATE, PUBLISHED, TABLES, CUTOFF_COUNTERS, CUTOFF_FAMILIES, *PRESENT.values(), *FORMER)
_DTYPES = {"Int64": pl.Int64(), "Float64": pl.Float64(), "String": pl.String(), "Binary": pl.Binary(),
           "Datetime(us)": pl.Datetime("us")}
_LABELS = {family.name: family.labels for family in EXTRA_FAMILIES}


@dataclass(frozen=True)
class CacheState:
    """The table cache as persisted: frames, their reads, the watermark and the last full reload."""

    frames: dict[str, pl.DataFrame]
    reads: dict[str, TableRead]
    watermark: dt.datetime
    last_full: dt.datetime  # wall time (naive UTC) of the last full reload


@dataclass(frozen=True)
class SavedSet:
    """What the first refresh after a start continues from."""

    cutoff: Usage  # at C: counters (and the extra families' counters) integrated from history_start
    cache: CacheState
    families: dict[str, pl.DataFrame]  # the extra families as last published (labels, value), for holding


def save(directory: Path, key: str, published: RenderedUsage, cutoff: Usage, cache: CacheState,
         previous_files: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """Write the set (exporter.live.warm); returns {table: (id of frame, file)} for the next save's links."""
    directory = Path(directory)
    files: dict[str, tuple[int, str]] = {}
    with staged_directory(directory, owned=OWNED, stage="live-state") as staging:
        (staging / TABLES).mkdir()
        for name, frame in sorted(cache.frames.items()):
            file = f"{name}.parquet"
            old = previous_files.get(name)
            if old is not None and old[0] == id(frame) and (directory / TABLES / old[1]).is_file():
                os.link(directory / TABLES / old[1], staging / TABLES / file)
            else:
                frame.write_parquet(staging / TABLES / file)
            files[name] = (id(frame), file)
        cutoff.counters.write_parquet(staging / CUTOFF_COUNTERS)
        (staging / CUTOFF_FAMILIES).mkdir()
        for name, frame in sorted(cutoff.families.items()):
            frame.write_parquet(staging / CUTOFF_FAMILIES / f"{name}.parquet")
        (staging / PUBLISHED).write_text(published_text(published))
        for field, file in PRESENT.items():
            if getattr(published, field) is not None:
                getattr(published, field).write_parquet(staging / file)
        (staging / STATE).write_text(json.dumps({
            "format": FORMAT, "key": key, "published_at": published.at.isoformat(), "cutoff_at": cutoff.at.isoformat(),
            "watermark": cache.watermark.isoformat(), "last_full_reload": cache.last_full.isoformat(),
            "tables": {name: _read_facts(read) for name, read in sorted(cache.reads.items())},
        }, indent=1) + "\n")
    return files


def load(directory: Path, key: str, published: RenderedUsage) -> SavedSet | None:
    """The saved cut-off and table cache behind ``published`` (exporter.live.warm.published); None if
    they cannot be read (the refresh then reads every table again)."""
    directory = Path(directory)
    state = saved_state(directory, key)
    if state is None:
        return None
    try:
        reads = {name: _read_from(name, facts) for name, facts in state["tables"].items()}
        frames = {name: pl.read_parquet(directory / TABLES / f"{name}.parquet") for name in reads
                  if (directory / TABLES / f"{name}.parquet").is_file()}
        for name, frame in frames.items():
            reads[name].frame = frame
        cutoff = Usage(at=dt.datetime.fromisoformat(state["cutoff_at"]), gauges=pl.DataFrame(),
                       counters=pl.read_parquet(directory / CUTOFF_COUNTERS),
                       families={path.stem: pl.read_parquet(path)
                                 for path in sorted((directory / CUTOFF_FAMILIES).glob("*.parquet"))})
        cache = CacheState(frames, reads, dt.datetime.fromisoformat(state["watermark"]),
                           dt.datetime.fromisoformat(state["last_full_reload"]))
    except (OSError, KeyError, ValueError, pl.exceptions.PolarsError) as err:
        log.warning("live table cache in %s cannot be read (%s); reading every table again", directory, err)
        return None
    return SavedSet(cutoff, cache, published_families(published))


def present(directory: Path, at: dt.datetime) -> dict[str, pl.DataFrame | None] | None:
    """The spans and gauges (RenderedUsage fields) behind the saved values that describe ``at``, for
    /explain before the first refresh; None when the set is gone or newer."""
    directory = Path(directory)
    try:
        if json.loads((directory / STATE).read_text()).get("published_at") != at.isoformat():
            return None
        return {field: pl.read_parquet(directory / file) if (directory / file).is_file() else None
                for field, file in PRESENT.items()}
    except (OSError, ValueError, AttributeError, pl.exceptions.PolarsError):
        return None


def published_families(published: RenderedUsage) -> dict[str, pl.DataFrame]:
    """The extra families of ``published`` as frames (their labels, value): the base of the next hold."""
    return {name: pl.DataFrame([(*labels, value) for labels, value in rows],
                               schema={**{label: pl.String() for label in _LABELS[name]}, "value": pl.Float64()},
                               orient="row")
            for name, rows in published.families.items() if name in _LABELS}


def _read_facts(read: TableRead) -> dict:
    return {"status": read.status, "optional": read.optional, "missing_columns": list(read.missing_columns),
            "columns": [[c.name, c.source_type, _dtype_text(c.dtype)] for c in read.columns]}


def _read_from(name: str, facts: dict) -> TableRead:
    columns = tuple(ColumnInfo(column, source_type, _DTYPES[dtype]) for column, source_type, dtype in facts["columns"])
    return TableRead(name, facts["status"], optional=facts["optional"], columns=columns,
                     missing_columns=tuple(facts["missing_columns"]))


def _dtype_text(dtype: pl.DataType) -> str:
    return "Datetime(us)" if dtype == pl.Datetime("us") else str(dtype)
