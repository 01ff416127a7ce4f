"""Source tables kept in memory and brought up to date by reading only the rows that changed.

A full read of a large site's databases takes many seconds; what changes between two refreshes
is a handful of rows. So:

- **full reload** (first refresh, then every ``full_reload_interval``): every declared table is
  read with ``exporter.extract.reading.read_tables_fast`` (the same readers as ``extract``: connectorx
  on MariaDB/MySQL, checked against one consistent view, else SQLAlchemy);
- **incremental refresh** (in between): per table, only rows with ``created_at``, ``updated_at``
  or ``deleted_at`` at or after ``watermark − margin`` are read and merged into the cached frame
  by primary key (a changed row replaces its old version). oslo.db soft deletes set
  ``deleted_at`` (and keep ``updated_at``), so a soft delete is seen;
- **hard deletes** are invisible to a timestamp filter. Upstream Blazar deletes rows (a lease
  deleted early must stop counting now), so after merging, each Blazar table's cached row count
  is compared with ``COUNT(*)`` and a mismatch re-reads that table in full. Nova only hard-deletes
  rows that are already soft-deleted (``nova-manage db archive``/``purge``), which changes no
  present value, so Nova tables skip the count (it costs a scan per table). Anything else — rows
  hard-deleted *and* replaced by as many new ones between two refreshes — is caught by the next
  full reload at the latest.
- Tables without any of those timestamp columns, or without their primary key, change only at
  full reloads.
- **child tables** (``children``: e.g. instance actions, whose rows Nova writes only while it
  also updates the instance) are not scanned: their rows are read by the keys of the parent's
  changed rows, an index lookup instead of a full-table scan.

Queries are SELECTs on the read-only engines from ``exporter.db.open_engine``; on MariaDB each
incremental statement is also bounded server-side with ``max_statement_time``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from exporter.db import classify
from exporter.errors import DatabaseError
from exporter.adapters.declared import ChildOf, SourceTable
from exporter.extract.reading import read_tables_fast
from exporter.extract.tableread import ReadPlan, TableRead
from exporter.extract.valuetypes import typed_frame
from exporter.live.warmset import CacheState

CHANGE_COLUMNS = ("created_at", "updated_at", "deleted_at")
COUNTED_SCHEMAS = ("blazar",)  # schemas whose services hard-delete rows that matter for the present


class TableCache:
    """The declared tables of one site, in memory, refreshed incrementally.

    ``engines`` maps each source name (``schema.table``) to the read-only engine that holds it.
    ``refresh(now)`` returns ``{"schema.table": DataFrame}`` for every table that could be read
    (optional tables that do not exist are absent) or raises DatabaseError; on error the cache
    keeps its previous state, so the next attempt starts from the last good one.
    """

    def __init__(self, engines: Mapping[str, Engine], sources: tuple[SourceTable, ...], *,
                 full_reload_interval: float = 3600.0, margin: dt.timedelta = dt.timedelta(minutes=10),
                 query_timeout: float = 30.0, monotonic: Callable[[], float] = time.monotonic,
                 children: Mapping[str, ChildOf] | None = None) -> None:
        self._engines = engines
        self._sources = sources
        self._children = dict(children or {})
        self._full_reload_interval = full_reload_interval
        self._margin = margin
        self._query_timeout = query_timeout
        self._monotonic = monotonic
        self._reads: dict[str, TableRead] = {}
        self._frames: dict[str, pl.DataFrame] = {}
        self._watermark: dt.datetime | None = None
        self._last_full: float | None = None
        self._last_full_wall: dt.datetime | None = None  # the ``now`` of the last full reload
        self.last_mode = ""  # "full" or "incremental": what the last refresh did
        self.last_rows_read = 0  # rows fetched by the last refresh (incremental: the changed rows)

    def refresh(self, now: dt.datetime) -> dict[str, pl.DataFrame]:
        due = self._last_full is None or self._monotonic() - self._last_full >= self._full_reload_interval
        frames = self._full_reload() if due else self._incremental(since=self._watermark - self._margin)
        self._frames, self._watermark = frames, now
        if due:
            self._last_full, self._last_full_wall = self._monotonic(), now
        return dict(frames)

    def saved(self) -> CacheState:
        """What a warm start needs to continue from here (exporter.live.warm)."""
        return CacheState(dict(self._frames), dict(self._reads), self._watermark, self._last_full_wall)

    def restore(self, cache: CacheState, now: dt.datetime) -> None:
        """Continue from a saved cache: the next refresh reads the rows changed since its watermark
        (a full reload when the saved one is older than ``full_reload_interval``)."""
        self._frames, self._reads, self._watermark = dict(cache.frames), dict(cache.reads), cache.watermark
        self._last_full_wall = cache.last_full
        self._last_full = self._monotonic() - max(0.0, (now - cache.last_full).total_seconds())

    def _full_reload(self) -> dict[str, pl.DataFrame]:
        reads: dict[str, TableRead] = {}
        for engine, sources in self._sources_by_engine():
            reads.update(read_tables_fast(engine, sources, statement_seconds=self._query_timeout))
        frames = {name: usable_frame(read) for name, read in reads.items()}
        self._reads = reads
        self.last_mode, self.last_rows_read = "full", sum(f.height for f in frames.values() if f is not None)
        return {name: frame for name, frame in frames.items() if frame is not None}

    def _incremental(self, *, since: dt.datetime) -> dict[str, pl.DataFrame]:
        frames = dict(self._frames)
        changed: dict[str, pl.DataFrame] = {}
        # parents first: a child table is read by the keys of its parent's changed rows
        for wanted in (lambda s: s.name not in self._children, lambda s: s.name in self._children):
            for engine, sources in self._sources_by_engine(wanted):
                try:
                    with engine.connect() as conn, statement_time_bound(conn, self._query_timeout):
                        for source in sources:
                            self._merge_changes(conn, engine, source, frames, changed, since=since)
                except DatabaseError:
                    raise
                except (sa.exc.SQLAlchemyError, OSError) as exc:
                    raise classify(exc, what="refreshing tables") from None
        self.last_mode, self.last_rows_read = "incremental", sum(frame.height for frame in changed.values())
        return frames

    def _merge_changes(self, conn: Connection, engine: Engine, source: SourceTable, frames: dict,
                       changed: dict, *, since: dt.datetime) -> None:
        """Read one table's changed rows into ``changed`` and merge them into ``frames``."""
        read = self._reads[source.name]
        if source.name not in frames or not incremental_possible(read, source):
            return
        child = self._children.get(source.name)
        if child is None:
            rows = changed_rows(conn, read, source, since=since)
        else:
            parent = changed.get(child.parent)
            keys = parent[child.parent_column].unique() if parent is not None else pl.Series([], dtype=pl.String)
            rows = rows_with_keys(conn, read, source, column=child.column, keys=keys)
        changed[source.name] = rows
        merged = merged_by_key(frames[source.name], rows, key=source.primary_key)
        if source.schema in COUNTED_SCHEMAS and merged.height != row_count(conn, source):
            merged = self._reread(engine, source)
            changed[source.name] = merged
        frames[source.name] = merged

    def _reread(self, engine: Engine, source: SourceTable) -> pl.DataFrame:
        read = read_tables_fast(engine, (source,), statement_seconds=self._query_timeout)[source.name]
        frame = usable_frame(read)
        if frame is None:
            raise DatabaseError(read.error or f"{source.name}: cannot be read", kind=_kind(read.status))
        self._reads[source.name] = read
        return frame

    def _sources_by_engine(self, wanted: Callable[[SourceTable], bool] = lambda _: True
                           ) -> list[tuple[Engine, tuple[SourceTable, ...]]]:
        grouped: dict[int, tuple[Engine, list[SourceTable]]] = {}
        for source in filter(wanted, self._sources):
            engine = self._engines[source.name]
            grouped.setdefault(id(engine), (engine, []))[1].append(source)
        return [(engine, tuple(sources)) for engine, sources in grouped.values()]


def usable_frame(read: TableRead) -> pl.DataFrame | None:
    """The frame of a read table; None for an absent optional table; raises for a required failure."""
    if read.status == "ok" and read.frame is not None:
        return read.frame
    if read.optional and read.status in ("missing", "missing_columns", "permission_denied"):
        return None
    raise DatabaseError(read.error or f"{read.name}: {read.status}", kind=_kind(read.status))


def _kind(status: str) -> str:
    return "missing" if status == "missing_columns" else status


def incremental_possible(read: TableRead, source: SourceTable) -> bool:
    """A table can be read incrementally if it has its primary key and a change timestamp."""
    names = {column.name for column in read.columns}
    return source.primary_key in names and bool(names & set(CHANGE_COLUMNS))


def changed_rows(conn: Connection, read: TableRead, source: SourceTable, *, since: dt.datetime) -> pl.DataFrame:
    """Rows created, updated or deleted at or after ``since``, typed exactly like the full read."""
    plan = ReadPlan(source, read.columns, read.missing_columns, (source.primary_key,))
    present = [c.name for c in read.columns if c.name in CHANGE_COLUMNS]
    changed = sa.or_(*(sa.literal_column(name) >= sa.bindparam("since", since) for name in present))
    rows = conn.execute(plan.select().where(changed)).fetchall()
    if not rows:
        return pl.DataFrame(schema=read.schema)
    return typed_frame(read.columns, rows)[0]


def rows_with_keys(conn: Connection, read: TableRead, source: SourceTable, *, column: str,
                   keys: pl.Series, chunk: int = 1000) -> pl.DataFrame:
    """Rows whose ``column`` is one of ``keys``, typed exactly like the full read."""
    plan = ReadPlan(source, read.columns, read.missing_columns, (source.primary_key,))
    values = keys.drop_nulls().to_list()
    rows = []
    for start in range(0, len(values), chunk):
        wanted = sa.literal_column(column).in_(sa.bindparam("keys", values[start:start + chunk], expanding=True))
        rows += conn.execute(plan.select().where(wanted)).fetchall()
    return typed_frame(read.columns, rows)[0] if rows else pl.DataFrame(schema=read.schema)


def merged_by_key(cached: pl.DataFrame, changed: pl.DataFrame, *, key: str) -> pl.DataFrame:
    """``cached`` with every row whose ``key`` is in ``changed`` replaced by its new version.

    Row order is not kept (changed rows go last): the engine does not depend on input order.
    """
    if changed.is_empty():
        return cached
    kept = cached.filter(~pl.col(key).is_in(changed[key].implode()))
    return pl.concat([kept, changed.select(cached.columns)])


def row_count(conn: Connection, source: SourceTable) -> int:
    table = sa.Table(source.table, sa.MetaData(), schema=source.schema)
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@contextlib.contextmanager
def statement_time_bound(conn: Connection, seconds: float) -> Iterator[None]:
    """On MariaDB, the server aborts any statement of this connection running over ``seconds``.

    Reset afterwards on every path, failures included, so the pooled connection does not bound
    later full reads; a connection that cannot be reset is invalidated (never pooled again).
    """
    if not getattr(conn.dialect, "is_mariadb", False):
        yield
        return
    conn.exec_driver_sql(f"SET SESSION max_statement_time = {float(seconds):.3f}")
    try:
        yield
    finally:
        try:
            conn.exec_driver_sql("SET SESSION max_statement_time = 0")
        except (sa.exc.SQLAlchemyError, OSError):
            conn.invalidate()
