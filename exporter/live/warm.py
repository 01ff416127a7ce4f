"""Warm start: the live exporter's state on disk, so a restart serves at once and then catches up.

After every successful refresh a site's state is written to ``<data_dir>/<site>/live-state/`` as
one set, swapped in atomically (``exporter.publish.staged_directory``: a reader or a crash sees the
old set or the new one, never a mix):

- ``state.json``: format, the key the values depend on (tool version and the site's settings),
  the moment the served values describe (``published_at``), the table cache's watermark, the wall
  time of the last full reload and the cut-off C of the counters, and each table's read metadata;
- ``published.{gauges,counters,spans}.parquet``: what ``/metrics`` served (counters as held);
- ``cutoff.counters.parquet``: the counters integrated up to C by the last full reload;
- ``tables/<schema.table>.parquet``: the table cache. A table unchanged since the previous set is
  hard-linked from it, so after a full reload only the tables that changed are written again.

On start the published values are served before anything else is done (their
``last_refresh_timestamp`` says how old they are; counters continue from them, never lower); the
first refresh then restores the table cache and reads only the rows changed since the watermark.
A full reload happens when the last one is older than ``full_reload_interval``, as without a
restart. A set whose key differs (another tool version, other site settings) or that cannot be
read is ignored: a cold start, logged once. Extra series families (``exporter.metrics.EXTRA_FAMILIES``,
none served live yet) are not saved: they reappear with the first refresh.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter import __version__
from exporter.config import SiteConfig
from exporter.db import masked
from exporter.extract.tableread import TableRead
from exporter.extract.valuetypes import ColumnInfo
from exporter.live.state import Usage
from exporter.publish import staged_directory

log = logging.getLogger("exporter.live")

FORMAT = "openstack-usage-exporter/live-state/1"
STATE_DIR = "live-state"
STATE = "state.json"
TABLES = "tables"
OWNED = (STATE, TABLES, "published.gauges.parquet", "published.counters.parquet", "published.spans.parquet",
         "cutoff.counters.parquet")
_DTYPES = {"Int64": pl.Int64(), "Float64": pl.Float64(), "String": pl.String(), "Binary": pl.Binary(),
           "Datetime(us)": pl.Datetime("us")}


@dataclass(frozen=True)
class CacheState:
    """The table cache as persisted: frames, their reads, the watermark and the last full reload."""

    frames: dict[str, pl.DataFrame]
    reads: dict[str, TableRead]
    watermark: dt.datetime
    last_full: dt.datetime  # wall time (naive UTC) of the last full reload


@dataclass(frozen=True)
class WarmState:
    published: Usage  # counters as they were served (held)
    cutoff: Usage  # at C: counters integrated from history_start (no gauges)
    cache: CacheState | None = None  # None until loaded (tables are read by the first refresh)


def state_key(site: SiteConfig) -> str:
    """What the persisted values depend on: the tool version and every setting of the site."""
    settings = dataclasses.asdict(site)
    settings["db_url"] = masked(site.db_url) if site.db_url else None
    settings["db_urls"] = {schema: masked(url) for schema, url in site.db_urls.items()}
    rules = site.rules_file
    settings["rules_text"] = (hashlib.sha256(Path(rules).read_bytes()).hexdigest()
                              if rules is not None and Path(rules).is_file() else None)
    text = json.dumps({"version": __version__, "site": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save(directory: Path, key: str, published: Usage, cutoff: Usage, cache: CacheState,
         previous_files: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """Write the set (module docstring); returns {table: (id of frame, file)} for the next save's links."""
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
        published.gauges.write_parquet(staging / "published.gauges.parquet")
        published.counters.write_parquet(staging / "published.counters.parquet")
        if published.spans is not None:
            published.spans.write_parquet(staging / "published.spans.parquet")
        cutoff.counters.write_parquet(staging / "cutoff.counters.parquet")
        (staging / STATE).write_text(json.dumps({
            "format": FORMAT, "key": key, "published_at": _iso(published.at), "cutoff_at": _iso(cutoff.at),
            "watermark": _iso(cache.watermark), "last_full_reload": _iso(cache.last_full),
            "tables": {name: _read_facts(read) for name, read in sorted(cache.reads.items())},
        }, indent=1) + "\n")
    return files


def load(directory: Path, key: str) -> WarmState | None:
    """The persisted published and cut-off values (tables are loaded by ``load_cache``); None: cold start."""
    try:
        state = json.loads((Path(directory) / STATE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("live state in %s cannot be read (%s); starting cold", directory, err)
        return None
    if state.get("format") != FORMAT or state.get("key") != key:
        log.info("live state in %s is from another version or other site settings; starting cold", directory)
        return None
    try:
        spans = Path(directory) / "published.spans.parquet"
        published = Usage(at=_time(state["published_at"]),
                          gauges=pl.read_parquet(Path(directory) / "published.gauges.parquet"),
                          counters=pl.read_parquet(Path(directory) / "published.counters.parquet"),
                          spans=pl.read_parquet(spans) if spans.is_file() else None)
        empty = published.gauges.clear()
        cutoff = Usage(at=_time(state["cutoff_at"]), gauges=empty,
                       counters=pl.read_parquet(Path(directory) / "cutoff.counters.parquet"))
    except (OSError, KeyError, ValueError, pl.exceptions.PolarsError) as err:
        log.warning("live state in %s is incomplete (%s); starting cold", directory, err)
        return None
    return WarmState(published, cutoff)


def load_cache(directory: Path) -> CacheState | None:
    """The persisted table cache (read by the first refresh after a start); None if it cannot be read."""
    try:
        state = json.loads((Path(directory) / STATE).read_text())
        reads = {name: _read_from(name, facts) for name, facts in state["tables"].items()}
        frames = {name: pl.read_parquet(Path(directory) / TABLES / f"{name}.parquet") for name in reads
                  if (Path(directory) / TABLES / f"{name}.parquet").is_file()}
        for name, frame in frames.items():
            reads[name].frame = frame
        return CacheState(frames, reads, _time(state["watermark"]), _time(state["last_full_reload"]))
    except (OSError, KeyError, ValueError, pl.exceptions.PolarsError) as err:
        log.warning("live table cache in %s cannot be read (%s); reading every table again", directory, err)
        return None


def _read_facts(read: TableRead) -> dict:
    return {"status": read.status, "optional": read.optional, "missing_columns": list(read.missing_columns),
            "columns": [[c.name, c.source_type, _dtype_text(c.dtype)] for c in read.columns]}


def _read_from(name: str, facts: dict) -> TableRead:
    columns = tuple(ColumnInfo(column, source_type, _DTYPES[dtype]) for column, source_type, dtype in facts["columns"])
    return TableRead(name, facts["status"], optional=facts["optional"], columns=columns,
                     missing_columns=tuple(facts["missing_columns"]))


def _dtype_text(dtype: pl.DataType) -> str:
    return "Datetime(us)" if dtype == pl.Datetime("us") else str(dtype)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
