"""Writing rendered tables into a site's databases (SQLite files or MariaDB databases).

Tables are dropped and re-created with their real types, then filled with chunked DB-API
``executemany`` inserts (one transaction per table). Rendered datetimes are epoch seconds;
they are written as the text SQLAlchemy itself uses for that backend.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from exporter.db import classify, is_sqlite, open_engine
from exporter.sitegen.render import Rendered
from exporter.sitegen.edge_schema import edge_table_names
from exporter.sitegen.schema import all_table_names

CHUNK_ROWS = 5_000
# SQLite's page cache per attached file while a table is filled: primary keys and indexes are random
# UUIDs, so with the 2 MB default a large table's inserts miss the cache and the cost per row grows with
# the table (computehost_allocations at 800 hosts: 6.9x the CPU of 200 hosts). Contents unchanged.
SQLITE_CACHE_KIB = 256 * 1024


def schemas_of(metadata: sa.MetaData) -> list[str]:
    return sorted({table.schema for table in metadata.tables.values()})


def open_site_engine(url: str, databases: Mapping[str, str], metadata: sa.MetaData) -> Engine:
    """A writable engine; on MariaDB the physical databases are created if missing."""
    try:
        if not is_sqlite(url):
            server = sa.create_engine(url)
            with server.begin() as conn:
                for schema in schemas_of(metadata):
                    name = databases.get(schema, schema)
                    conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
            server.dispose()
        return open_engine(url, databases, writable=True)
    except sa.exc.SQLAlchemyError as exc:
        raise classify(exc, what="creating the site databases") from exc


def recreate_tables(engine: Engine, metadata: sa.MetaData) -> None:
    """Drop every generator table (all capability variants) and create ``metadata``'s."""
    try:
        with engine.begin() as conn:
            for schema, table in sorted(all_table_names() | edge_table_names()):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS {_quoted(engine, schema, table)}'))
            for table in metadata.sorted_tables:
                create_table(conn, table)
    except sa.exc.SQLAlchemyError as exc:
        raise classify(exc, what="creating the site tables") from exc


def create_table(conn: sa.Connection, table: sa.Table) -> None:
    """The table, then its indexes in name order. ``metadata.create_all`` walks ``table.indexes``, a
    set ordered by object ids: the order of indexes in the file (SQLite's sqlite_master) changed
    from run to run, so the same site was not the same bytes."""
    conn.execute(sa.schema.CreateTable(table))
    for index in sorted(table.indexes, key=lambda index: str(index.name)):
        conn.execute(sa.schema.CreateIndex(index))


def _quoted(engine: Engine, schema: str, table: str) -> str:
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    physical = translate.get(schema, schema)
    quote = '"' if engine.dialect.name == "sqlite" else "`"
    return f"{quote}{physical}{quote}.{quote}{table}{quote}"


def insert_tables(engine: Engine, metadata: sa.MetaData, rendered: Rendered,
                  on_table: Callable[[str], None] | None = None) -> dict[str, int]:
    """Insert every rendered table (consuming its rows once); returns rows per ``schema.table``."""
    counts = {}
    for key in sorted(rendered):
        table = metadata.tables[key]
        data = rendered[key]
        sql = _insert_sql(engine, table, data.columns)
        convert = _row_converter(engine, table, data.columns)
        counts[key] = 0
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "sqlite":  # per connection (NullPool: one per table)
                    conn.exec_driver_sql(f'PRAGMA "{table.schema}".cache_size = -{SQLITE_CACHE_KIB}')
                for chunk in _chunks(data.rows, CHUNK_ROWS):
                    conn.exec_driver_sql(sql, [convert(row) for row in chunk])
                    counts[key] += len(chunk)
        except sa.exc.SQLAlchemyError as exc:
            raise classify(exc, what=f"writing {key}") from exc
        if on_table is not None:
            on_table(key)
    return counts


def write_site(url: str, databases: Mapping[str, str], metadata: sa.MetaData, rendered: Rendered,
               on_table: Callable[[str], None] | None = None) -> dict[str, int]:
    """Re-create ``metadata``'s tables in the site's databases and insert ``rendered``; rows per table."""
    engine = open_site_engine(url, databases, metadata)
    try:
        recreate_tables(engine, metadata)
        return insert_tables(engine, metadata, rendered, on_table=on_table)
    finally:
        engine.dispose()


def _chunks(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _insert_sql(engine: Engine, table: sa.Table, columns: tuple[str, ...]) -> str:
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    quote = engine.dialect.identifier_preparer.quote_identifier
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join([mark] * len(columns))
    return f"INSERT INTO {_quoted(engine, table.schema, table.name)} ({names}) VALUES ({marks})"


def _row_converter(engine: Engine, table: sa.Table, columns: tuple[str, ...]) -> Callable[[tuple], tuple]:
    """Epoch seconds -> the backend's DATETIME text; dates -> ISO text (SQLAlchemy's SQLite formats)."""
    stamp = _sqlite_stamp if engine.dialect.name == "sqlite" else _mysql_stamp
    times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.DateTime)]
    dates = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.Date)]
    if not times and not dates:
        return tuple

    def convert(row: tuple) -> tuple:
        out = list(row)
        for i in times:
            if out[i] is not None:
                out[i] = stamp(out[i])
        for i in dates:
            if out[i] is not None:
                out[i] = out[i].isoformat()
        return tuple(out)

    return convert


@functools.lru_cache(maxsize=1 << 14)
def _day(days: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat()


@functools.lru_cache(maxsize=1)
def _times_of_day() -> list[str]:
    """`` HH:MM:SS`` for every second of a day (built once, 86,400 short strings)."""
    return [f" {h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


def _mysql_stamp(seconds: int) -> str:
    days, second = divmod(seconds, 86400)
    return _day(days) + _times_of_day()[second]


def _sqlite_stamp(seconds: int) -> str:
    return _mysql_stamp(seconds) + ".000000"
