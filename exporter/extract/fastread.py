"""Fast reads of MariaDB/MySQL tables: connectorx through polars, checked against the consistent view.

The SQLAlchemy reader (``tableread``) spends most of its time turning driver rows into Python
objects. connectorx reads a query straight into Arrow, several times faster, but on its own
connections: it cannot share the one consistent-snapshot transaction (``ConsistentView``) that
``extract`` reads a server in. So the consistent view stays the reference and the fast read is
only accepted where it provably equals it:

- the view is opened first (moment T0, the server's clock); every table is then read by
  connectorx in primary-key ranges of at most ``batch_rows`` rows (bounded memory; the next
  ``READ_AHEAD`` ranges are read on their own connections while one is typed and written), each
  query also returning ``CRC32(key)``; a row is *recent* when a change column (``created_at``,
  ``updated_at``, ``deleted_at``) is at or after the cut T0 − CUT_MARGIN (compared in this
  process on the digits the server sent, the order the server's own comparison uses, also for
  invalid dates; the cut is taken down to whole seconds, which only adds recent rows);
- a row that is not recent has not been written since the cut (OpenStack's ORM stamps every
  insert, update and soft delete; the margin covers clock skew and transactions open across T0),
  so its fast copy is what the view holds — if the view holds it at all;
- recent rows are taken from the view instead (read there by key, in the fast read's order);
  recent rows the view does not hold (inserted after T0) are dropped;
- finally the key set is checked: count, sum and XOR of ``CRC32(key)`` over the result must equal
  the same aggregate computed in the view. A row deleted, archived (moved to a shadow table with
  its old timestamps) or inserted with old timestamps since T0 fails the check, and the table is
  read again in the view with the SQLAlchemy reader. The result is therefore the view's content.

Every connectorx connection runs ``SET time_zone = '+00:00'``, ``SET SESSION TRANSACTION READ
ONLY`` and a server-side statement time bound (MariaDB ``max_statement_time``, MySQL
``max_execution_time``) before its query. Values are typed exactly like the SQLAlchemy reader, so
the parquet files and their hashes are the same: floats are selected as text and parsed by the
same rules; datetimes are selected as the number of their digits and typed here
(``connectorx_source.datetime_digits``, ``valuetypes.datetime_from_digits``): exact to the
microsecond, and those that are no date (zero or impossible dates), which the text reader stores
as null and counts as invalid, become null and are counted alike. The range queries hold no other
expression than ``CRC32(key)``: the server's CPU per row is close to a plain ``SELECT``.

Where the fast reader does not run (``unavailable``), the SQLAlchemy reader does: SQLite
(connectorx opens SQLite files read-write, creates missing ones and ignores pre-execution
queries, so a read-only connection cannot be guaranteed), URLs with driver options (TLS, socket,
a charset other than utf8mb4, which every connectorx connection sets: connectorx would not apply them), connectorx not importable, and per table: no single-
column key, no change column, a column type connectorx cannot read, or the check failing.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from exporter.adapters.declared import SourceTable
from exporter.extract.byprimary import read_by_primary, uuid_like
from exporter.extract.connectorx_source import (FastReadUnusable, FastSource, datetime_digits, literal, quoted,
                                                run_query, selected)
from exporter.extract.keyranges import key_ranges, primary_ranges
from exporter.extract.tableread import ConsistentView, ReadPlan, TableRead, plan_table
from exporter.extract.valuetypes import ColumnInfo, typed_frame, typed_series, whole_digits

CHANGE_COLUMNS = ("created_at", "updated_at", "deleted_at")
CUT_MARGIN = dt.timedelta(minutes=10)
READ_AHEAD = 2  # key ranges read ahead while one is typed and written: the server and this process overlap
_CRC, _CHANGE = "__crc", "__change_"  # the key's CRC32; change columns read only to tell recent rows


class FastStream:
    """One table's fast read as a stream of typed frames (``frames()``, at most one key range in
    memory), then its outcome (``result()``: the TableRead, or FastReadUnusable when the key check
    failed). ``schema`` is known before the first frame, for writers that need it up front."""

    def __init__(self, view: ConsistentView, fast: FastSource, source: SourceTable, *, batch_rows: int,
                 progress: Callable[[int], None] = lambda rows: None, spill_dir: Path | None = None) -> None:
        self.view, self.fast, self.batch_rows, self.progress = view, fast, batch_rows, progress
        self.spill_dir = spill_dir  # where a table read by its primary key is put in key ranges (byprimary)
        with view.lock:
            conn = view.connection()
            self.plan = plan_table(conn, source)
            self.table = _FastTable.of(conn, self.plan, view.started_at - CUT_MARGIN)
        self.schema = {c.name: c.dtype for c in self.plan.columns}
        self._outcome: TableRead | Exception | None = None

    def frames(self) -> Iterator[pl.DataFrame]:
        plan, table, lock = self.plan, self.table, self.view.lock
        with lock:
            conn = self.view.connection()
            view = self.view.number  # the view this read is checked against, whatever reopens it later
            expected, low, top = table.fingerprint(conn)
        invalid = dict.fromkeys((c.name for c in plan.columns), 0)
        got = _Fingerprint()
        ranges = self.view.locked(key_ranges(conn, table, expected.count, low, top, self.batch_rows))
        raws = None
        if table.primary and self.spill_dir is not None and expected.count:  # read once by the primary key
            ranges = list(ranges)
            primary = self.view.locked(primary_ranges(conn, table, expected.count, self.batch_rows))
            raws = read_by_primary(table, ranges, primary, lambda each, query: _read_ahead(self.fast, query, each),
                                   self.spill_dir)
        server_sorts = False  # set once a range cannot be put in key order here; query() orders a clustered key itself
        raws = raws or _read_ahead(self.fast, lambda bounds: table.query(*bounds, ordered=server_sorts), ranges)
        try:
            for bounds, ordered, raw in raws:
                if not ordered:
                    raw = table.in_key_order(raw)
                    if raw is None:
                        server_sorts = True
                        raw = run_query(self.fast, table.query(*bounds, ordered=True)[0])
                frame, bad = _range(conn, lock, table, raw)
                got = got.plus(frame)
                invalid = {name: invalid[name] + bad.get(name, 0) for name in invalid}
                if frame.height:
                    yield frame.drop(_CRC)
                    self.progress(got.count)
        finally:  # now, not when collected: a failed or abandoned stream's spill directory and reads end here
            raws.close()
        if got != expected:
            self._outcome = FastReadUnusable(f"{plan.source.name} changed during the read (key check failed); "
                                             "read again in the consistent view")
            return
        self._outcome = TableRead(plan.source.name, plan.status, optional=plan.source.optional, columns=plan.columns,
                                  missing_columns=plan.missing, rows=got.count, view=view,
                                  reader="connectorx", invalid_values={k: v for k, v in invalid.items() if v},
                                  error=plan.missing_error)

    def result(self) -> TableRead:
        if isinstance(self._outcome, Exception):
            raise self._outcome
        if self._outcome is None:
            raise FastReadUnusable(f"{self.plan.source.name}: the fast read did not finish")
        return self._outcome


@dataclass(frozen=True)
class _Fingerprint:
    count: int = 0
    crc_sum: int = 0
    crc_xor: int = 0

    def plus(self, frame: pl.DataFrame) -> "_Fingerprint":
        if frame.is_empty():
            return self
        crc = frame[_CRC].cast(pl.Int64)
        return _Fingerprint(self.count + frame.height, self.crc_sum + int(crc.sum()),
                            self.crc_xor ^ int(crc.bitwise_xor()))


@dataclass(frozen=True)
class _FastTable:
    """One table as the fast reader selects it: physical name, key, and what tells recent rows."""

    plan: ReadPlan
    physical: str  # `db`.`table`
    key: str
    numeric_key: bool
    change: tuple[str, ...]  # the change columns' names in a range's frame
    extra: tuple[ColumnInfo, ...]  # change columns the table has but does not declare: selected as _CHANGE + name
    cut_digits: int  # the cut as YYYYMMDDhhmmss (whole seconds, rounded down)
    clustered: bool  # the key is the table's primary key: InnoDB reads a range of it in key order
    primary: str | None = None  # else the table's integer primary key, if it has one: see byprimary

    @classmethod
    def of(cls, conn: Connection, plan: ReadPlan, cut: dt.datetime) -> "_FastTable":
        source = plan.source
        translate = conn.get_execution_options().get("schema_translate_map") or {}
        database = translate.get(source.schema, source.schema)
        reflected, primary_key = plan.reflected, plan.primary_key  # plan_table's: no second reflection
        if len(plan.order_by) != 1:
            raise FastReadUnusable(f"{source.name}: no single-column key to read ranges by")
        change = [name for name in CHANGE_COLUMNS if name in reflected]
        if not change:
            raise FastReadUnusable(f"{source.name}: no change column (created_at/updated_at/deleted_at)")
        key = plan.order_by[0]
        declared = {c.name for c in plan.columns}
        extra = tuple(ColumnInfo(name, reflected[name].compile(dialect=conn.dialect), pl.Datetime("us"))
                      for name in change if name not in declared)
        return cls(plan, f"{quoted(database)}.{quoted(source.table)}", key,
                   isinstance(reflected[key], sa.types.Integer),
                   tuple(name if name in declared else _CHANGE + name for name in change), extra,
                   int(f"{cut:%Y%m%d%H%M%S}"), tuple(primary_key) == (key,),
                   primary_key[0] if len(primary_key) == 1 and primary_key[0] != key
                   and isinstance(reflected[primary_key[0]], sa.types.Integer) else None)

    def fingerprint(self, conn: Connection) -> tuple[_Fingerprint, object, object]:
        """The view's key aggregate and its lowest and highest key (one scan of the keys only, so
        the server may use any index)."""
        key = quoted(self.key)
        row = conn.exec_driver_sql(
            f"SELECT COUNT(*), COALESCE(SUM(CRC32({key})), 0), COALESCE(BIT_XOR(CRC32({key})), 0), MIN({key}), "
            f"MAX({key}) FROM {self.physical}").one()
        return _Fingerprint(int(row[0]), int(row[1]), int(row[2])), row[3], row[4]

    def rows_with_keys(self, conn: Connection, keys: list) -> tuple[pl.DataFrame, dict[str, int]]:
        wanted = sa.literal_column(quoted(self.key)).in_(sa.bindparam("keys", keys, expanding=True))
        return self._view_rows(conn, wanted)

    def _view_rows(self, conn: Connection, where) -> tuple[pl.DataFrame, dict[str, int]]:
        select = self.plan.select().where(where)
        select = select.add_columns(sa.func.crc32(sa.literal_column(quoted(self.key))).label(_CRC))
        rows = conn.execute(select).fetchall()
        if not rows:
            return _empty(self.plan), {}
        frame, invalid = typed_frame(self.plan.columns, [row[:-1] for row in rows])
        return frame.with_columns(pl.Series(_CRC, [row[-1] for row in rows], dtype=pl.Int64)), invalid

    def query(self, low, high, top, *, ordered: bool, by: str | None = None) -> tuple[str, bool]:
        """One key range's SELECT, and whether it has ``ORDER BY`` the key: where the server gets
        that order for free (the primary key) or ``ordered`` asks for it; see ``in_key_order``.
        ``by``: a range of that column (the primary key: byprimary) instead, in its order."""
        columns = [selected(column) for column in self.plan.columns]
        columns += [f"{datetime_digits(column)} AS {quoted(_CHANGE + column.name)}" for column in self.extra]
        ranged = quoted(by or self.key)
        bound = f"{ranged} < {literal(high)}" if high is not None else f"{ranged} <= {literal(top)}"
        ordered = (ordered or self.clustered) and by is None
        order = f" ORDER BY {ranged}" if ordered or by else ""
        return (f"SELECT {', '.join(columns)}, CRC32({quoted(self.key)}) AS {_CRC} "
                f"FROM {self.physical} WHERE {ranged} >= {literal(low)} AND {bound}{order}"), ordered

    def in_key_order(self, raw: pl.DataFrame) -> pl.DataFrame | None:
        """A range read without ORDER BY (the key is not the primary key: the server would sort
        the whole rows, and a filesort with a TEXT column re-reads every row, 5 s of its CPU for
        the 345k rows of nova.instance_extra) put in key order here, where the order here is the
        server's: integers, and text of lowercase (or uppercase) hex digits and dashes (UUIDs), on
        which every collation orders like the bytes; None where it is not (the server must sort)."""
        if raw.height < 2:
            return raw
        keys = raw[self.key]
        if keys.dtype.is_integer() or (keys.dtype == pl.String and uuid_like(keys) is not None):
            return raw.sort(self.key, maintain_order=True)
        return None

    def recent(self, raw: pl.DataFrame) -> pl.Series:
        """Rows of a range (as connectorx read it) with a change column at or after the cut."""
        return pl.select(pl.any_horizontal([whole_digits(raw[name]) >= self.cut_digits for name in self.change])
                         .fill_null(False)).to_series()


def _read_ahead(fast: FastSource, query: Callable[[tuple], tuple[str, bool]],
                ranges: Iterable[tuple]) -> Iterator[tuple[tuple, bool, pl.DataFrame]]:
    """``(bounds, ordered, frame)`` of ``ranges`` as connectorx read them with ``query(bounds)``
    (its SQL, and whether that orders by the key), in order; up to READ_AHEAD further ranges are being
    read (each on its own connection) while the caller works on one, so memory stays bounded."""
    pending: collections.deque[tuple[tuple, bool, Future]] = collections.deque()
    ranges = iter(ranges)
    with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="fastread") as pool:
        try:
            while True:
                while len(pending) <= READ_AHEAD:
                    bounds = next(ranges, None)
                    if bounds is None:
                        break
                    sql, ordered = query(bounds)
                    pending.append((bounds, ordered, pool.submit(run_query, fast, sql)))
                if not pending:
                    return
                bounds, ordered, future = pending.popleft()
                yield bounds, ordered, future.result()
        finally:
            for _, _, future in pending:
                future.cancel()


def _range(conn: Connection, lock, table: _FastTable, raw: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """One key range's fast rows, the recent ones replaced by the view's version (or dropped).

    Returns the frame (typed, in key order, with its CRC column) and invalid values per column."""
    plan, key = table.plan, table.key
    fresh = table.recent(raw)
    if not fresh.any():  # the usual case: nothing written since the cut
        typed = _typed(plan.columns, raw)
        return typed, _invalid(plan, raw, typed)
    typed = _typed(plan.columns, raw).with_row_index("__pos")
    old = typed.filter(~fresh)
    invalid = _invalid(plan, raw.filter(~fresh), old)
    fresh_keys = typed.filter(fresh).select("__pos", key)
    with lock:
        looked, looked_invalid = table.rows_with_keys(conn, fresh_keys[key].to_list())
    invalid = {name: count + looked_invalid.get(name, 0) for name, count in invalid.items()}
    replaced = looked.join(fresh_keys, on=key, how="inner")
    merged = pl.concat([old, replaced.select(old.columns)]).sort("__pos").drop("__pos")
    return merged, invalid


def _invalid(plan: ReadPlan, raw: pl.DataFrame, typed: pl.DataFrame) -> dict[str, int]:
    """Values that did not fit their type (stored as null), per column: the nulls typing added."""
    return {c.name: typed[c.name].null_count() - raw[c.name].null_count() for c in plan.columns}


def _typed(columns: tuple[ColumnInfo, ...], raw: pl.DataFrame) -> pl.DataFrame:
    """connectorx columns -> the slow reader's dtypes and values, plus the key CRC as Int64."""
    series = [typed_series(column, raw[column.name]) for column in columns]
    return pl.DataFrame([*series, raw[_CRC].cast(pl.Int64)])


def _empty(plan: ReadPlan) -> pl.DataFrame:
    return pl.DataFrame(schema={**{c.name: c.dtype for c in plan.columns}, _CRC: pl.Int64})
