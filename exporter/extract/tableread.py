"""Reading declared source tables from a database into typed polars frames, batch by batch.

Only SELECTs: each table is reflected (which declared columns exist, their SQL types), then read
ordered by primary key in batches of ``batch_rows`` through a server-side cursor, so memory is
bounded by one batch whatever the table size. Every failure becomes a per-table status; one
missing or forbidden table never stops the others.

All tables of one engine are read in ONE consistent-snapshot read transaction
(:class:`ConsistentView`), so a concurrent change between two table reads (an archive run moving
rows from ``instances`` to ``shadow_instances``) cannot show a row twice or not at all. Only
when a failure breaks the connection (a query timeout) do the remaining tables get a new view;
``TableRead.view`` numbers the views, so a snapshot says which tables were read together.

How SQL types become polars dtypes, and values that do not fit: ``valuetypes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import contextlib
import datetime as dt
import threading

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from exporter.db import classify
from exporter.errors import DatabaseError
from exporter.progress import SILENT, Progress, StageBar
from exporter.adapters.declared import SourceTable
from exporter.extract.valuetypes import ColumnInfo, polars_dtype, typed_frame

# ok, or why a table could not be read (DatabaseError kinds, plus missing_columns).
STATUSES = ("ok", "missing", "missing_columns", "permission_denied", "auth_error", "connection_error",
            "timeout", "query_error")

@dataclass
class TableRead:
    """What reading one declared table gave: a status, and the frame when read into memory.

    ``frame`` is None unless the table was read into memory (``read_tables``) with status ok or
    missing_columns. ``missing_columns`` are declared columns the table lacks; status
    ``missing_columns`` means a *required* one is among them (present columns are still copied).
    """

    name: str
    status: str
    optional: bool = False
    frame: pl.DataFrame | None = None
    columns: tuple[ColumnInfo, ...] = ()
    missing_columns: tuple[str, ...] = ()
    rows: int = 0
    invalid_values: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    view: int = 0  # which consistent-snapshot transaction of its engine read it (1, 2, ...; 0: none)
    reader: str = "sqlalchemy"  # or "connectorx" (exporter.extract.fastread)
    fallback: str | None = None  # why the fast reader was not used, where it could have been

    @property
    def copied(self) -> bool:
        """Whether rows were copied (the table exists and was readable)."""
        return self.status in ("ok", "missing_columns")

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {column.name: column.dtype for column in self.columns}


@dataclass(frozen=True)
class ReadPlan:
    """How to select one table: the columns present, their types, and a stable row order."""

    source: SourceTable
    columns: tuple[ColumnInfo, ...]
    missing: tuple[str, ...]
    order_by: tuple[str, ...]
    # what plan_table reflected (every column's SQL type, the primary key), so the fast reader need
    # not ask the server again; None in plans built from an earlier read (the live exporter's)
    reflected: Mapping[str, sa.types.TypeEngine] | None = field(default=None, compare=False)
    primary_key: tuple[str, ...] | None = field(default=None, compare=False)

    @property
    def status(self) -> str:
        lacking = set(self.source.required) & set(self.missing)
        return "missing_columns" if lacking else "ok"

    @property
    def missing_error(self) -> str | None:
        lacking = sorted(set(self.source.required) & set(self.missing))
        return f"{self.source.name}: required column(s) missing: {', '.join(lacking)}" if lacking else None

    def select(self) -> sa.Select:
        """SELECT of the present columns; datetimes as text so invalid values cannot break the driver."""
        # a Table (not a lightweight table clause) so the engine's schema_translate_map applies
        table = sa.Table(self.source.table, sa.MetaData(), *(sa.Column(c.name) for c in self.columns),
                         schema=self.source.schema)
        wanted = [sa.cast(table.c[c.name], sa.String).label(c.name) if c.dtype == pl.Datetime("us")
                  else table.c[c.name] for c in self.columns]
        return sa.select(*wanted).order_by(*(table.c[name] for name in self.order_by))


def read_tables(engine: Engine, sources: Iterable[SourceTable], *, batch_rows: int = 50_000,
                progress: Progress | None = None) -> dict[str, TableRead]:
    """Read every source table into memory: ``{"schema.table": TableRead}`` with frames.

    Never raises for database trouble: an unreachable server or rejected login gives every
    table that status (the view is opened first, so a dead server costs one connect timeout).
    """
    sources = tuple(sources)
    view = ConsistentView(engine)
    failure = view.open_or_failure()
    if failure is not None:
        return failed_reads(sources, failure)
    reads: dict[str, TableRead] = {}
    progress = progress or SILENT
    with progress.stage("read tables", total=len(sources)) as bar, view:
        for source in sources:
            batches: list[pl.DataFrame] = []
            read = read_table(view, source, batches.append, batch_rows=batch_rows, bar=bar)
            if read.copied:
                read.frame = pl.concat(batches) if batches else pl.DataFrame(schema=read.schema)
            reads[source.name] = read
            bar.advance()
    return reads


def failed_reads(sources: Iterable[SourceTable], failure: DatabaseError) -> dict[str, TableRead]:
    """Every table with the status of a server that could not be reached (or refused the login)."""
    return {s.name: TableRead(s.name, failure.kind, optional=s.optional, error=str(failure)) for s in sources}


class ConsistentView(contextlib.AbstractContextManager):
    """One connection in one read-only consistent-snapshot transaction: every read through it
    sees the database as of the same moment. MySQL/MariaDB: ``START TRANSACTION WITH CONSISTENT
    SNAPSHOT, READ ONLY`` (InnoDB: one read view for every database on the server); SQLite: one
    read transaction (``BEGIN``; the snapshot is taken at its first read). A broken connection is
    replaced by a new view on the next read (``number`` counts them). Threads that share a view
    take turns on its connection with ``lock`` (held for whole statements and their results).

    Entering opens the view at once, so its moment precedes every read made through it (tables
    may be read by several threads) and a server that cannot be reached or refuses the login
    fails there, as one DatabaseError line; only a connection that broke later is reopened lazily."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.number = engine, 0
        self.lock = threading.RLock()
        self._conn: Connection | None = None
        self.started_at: dt.datetime | None = None  # MySQL: the server's UTC clock when the view opened

    def connection(self) -> Connection:
        if self._conn is not None and (self._conn.invalidated or self._conn.closed):
            self.close()
        if self._conn is None:
            self._conn = self.engine.connect()
            self.number += 1
            mysql = self._conn.dialect.name in ("mysql", "mariadb")
            self._conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY" if mysql else "BEGIN")
            if mysql:
                self.started_at = self._conn.exec_driver_sql("SELECT UTC_TIMESTAMP(6)").scalar_one()
        return self._conn

    def locked(self, items: Iterator) -> Iterator:
        """``items``, each produced holding ``lock`` (items that query this view's connection)."""
        while True:
            with self.lock:
                item = next(items, None)
            if item is None:
                return
            yield item

    def open(self) -> "ConsistentView":
        """Open the view now (again after ``close``); raises DatabaseError (one line, no password)."""
        try:
            with self.lock:
                self.connection()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            self.close()
            raise classify(exc, what=f"connecting to {self.engine.url.render_as_string(hide_password=True)}") from None
        return self

    def open_or_failure(self) -> DatabaseError | None:
        """``open``, returning the failure instead of raising it (readers that report per table)."""
        try:
            self.open()
        except DatabaseError as failure:
            return failure
        return None

    def __enter__(self) -> "ConsistentView":
        return self.open()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError, OSError):
                self._conn.close()  # rolls the read transaction back
            self._conn = None

    def __exit__(self, *exc) -> None:
        self.close()


def read_table(view: ConsistentView, source: SourceTable, sink: Callable[[pl.DataFrame], None], *,
               batch_rows: int = 50_000, bar: StageBar | None = None) -> TableRead:
    """Stream one table into ``sink`` as typed frames of at most ``batch_rows`` rows, read in
    ``view``. Returns the outcome without a frame; any database error becomes the table's status.
    """
    bar = bar or StageBar()
    bar.item(source.name)
    try:
        conn = view.connection()
        plan = plan_table(conn, source)
        rows, invalid = 0, dict.fromkeys((c.name for c in plan.columns), 0)
        for frame, bad in _batches(conn, plan, batch_rows):
            sink(frame)
            rows += frame.height
            invalid = {name: invalid[name] + bad.get(name, 0) for name in invalid}
            bar.item(f"{source.name} {rows:,} rows")
    except DatabaseError as err:
        return TableRead(source.name, err.kind, optional=source.optional, error=str(err), view=view.number)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        err = classify(exc, what=source.name)
        return TableRead(source.name, err.kind, optional=source.optional, error=str(err), view=view.number)
    return TableRead(
        source.name, plan.status, optional=source.optional, columns=plan.columns, missing_columns=plan.missing,
        rows=rows, invalid_values={k: v for k, v in invalid.items() if v}, view=view.number, error=plan.missing_error,
    )


def plan_table(conn: Connection, source: SourceTable) -> ReadPlan:
    """Reflect the table; raises DatabaseError(kind=missing|permission_denied|...)."""
    translate: Mapping[str, str] = conn.get_execution_options().get("schema_translate_map") or {}
    physical_schema = translate.get(source.schema, source.schema)
    inspector = sa.inspect(conn)
    try:
        reflected = {c["name"]: c["type"] for c in inspector.get_columns(source.table, schema=physical_schema)}
        key = tuple(inspector.get_pk_constraint(source.table, schema=physical_schema).get("constrained_columns") or ())
    except sa.exc.NoSuchTableError:
        raise DatabaseError(f"{source.name}: does not exist", kind="missing") from None
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise classify(exc, what=source.name) from None
    present = [name for name in source.columns if name in reflected]
    if not present:
        raise DatabaseError(f"{source.name}: none of the declared columns exist", kind="missing_columns")
    columns = tuple(ColumnInfo(name, _type_text(reflected[name], conn), polars_dtype(reflected[name]))
                    for name in present)
    if source.primary_key in key and set(key) <= set(present):
        # the table's whole key: the declared column alone may repeat (the legacy cache is keyed by
        # date and node_type), and ties would come back in whatever order the server likes
        order = key
    elif source.primary_key in present:
        order = (source.primary_key,)
    elif key and set(key) <= set(present):
        order = key
    else:
        order = tuple(present)
    missing = tuple(name for name in source.columns if name not in reflected)
    return ReadPlan(source, columns, missing, order, reflected, key)


def _batches(conn: Connection, plan: ReadPlan, batch_rows: int) -> Iterator[tuple[pl.DataFrame, dict[str, int]]]:
    """Typed frames of at most ``batch_rows`` rows, with per-column counts of invalid values."""
    result = conn.execute(plan.select(), execution_options={"stream_results": True, "max_row_buffer": batch_rows})
    for rows in result.partitions(batch_rows):
        yield typed_frame(plan.columns, rows)


def _type_text(sql_type: sa.types.TypeEngine, conn: Connection) -> str:
    try:
        return sql_type.compile(dialect=conn.dialect)
    except Exception:  # a type the dialect cannot render back (e.g. SQLite NullType)
        return str(type(sql_type).__name__)
