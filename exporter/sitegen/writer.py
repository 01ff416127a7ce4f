"""Writing rendered tables into a site's databases (SQLite files or MariaDB databases).

Tables are dropped and re-created with their real types, then filled with chunked
``executemany`` inserts inside one transaction per table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from exporter.db import classify, is_sqlite, open_engine
from exporter.sitegen.render import Rendered
from exporter.sitegen.schema import all_table_names

CHUNK_ROWS = 5_000


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
            for schema, table in sorted(all_table_names()):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS {_quoted(engine, schema, table)}'))
            metadata.create_all(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise classify(exc, what="creating the site tables") from exc


def _quoted(engine: Engine, schema: str, table: str) -> str:
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    physical = translate.get(schema, schema)
    quote = '"' if engine.dialect.name == "sqlite" else "`"
    return f"{quote}{physical}{quote}.{quote}{table}{quote}"


def insert_tables(engine: Engine, metadata: sa.MetaData, rendered: Rendered,
                  on_table: Callable[[str], None] | None = None) -> dict[str, int]:
    """Insert every rendered table; returns row counts per ``schema.table``."""
    counts = {}
    for key in sorted(rendered):
        table = metadata.tables[key]
        data = rendered[key]
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "sqlite":
                    conn.exec_driver_sql(f'PRAGMA "{table.schema}".synchronous = OFF')
                for at in range(0, len(data.rows), CHUNK_ROWS):
                    chunk = data.rows[at:at + CHUNK_ROWS]
                    conn.execute(table.insert(), [dict(zip(data.columns, row)) for row in chunk])
        except sa.exc.SQLAlchemyError as exc:
            raise classify(exc, what=f"writing {key}") from exc
        counts[key] = len(data.rows)
        if on_table is not None:
            on_table(key)
    return counts
