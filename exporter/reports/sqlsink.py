"""Writing a KPI table into a SQL table for the weekly report: created if absent, and the rows of
the reported (site, period, period_start) keys replaced in one transaction, so running the same
report twice leaves the same rows (idempotent cron)."""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from exporter.db import classify, masked
from exporter.errors import ConfigError

KEY = ("site", "period", "period_start", "node_type")
DEVICE_KEY = ("site", "period", "period_start", "machine_name")  # an edge site's device table


def _column_type(dtype: pl.DataType) -> sa.types.TypeEngine:
    if dtype == pl.String:
        return sa.String(255)
    if dtype == pl.Date:
        return sa.Date()
    if dtype == pl.Boolean:
        return sa.Boolean()
    if dtype.is_integer():
        return sa.BigInteger()
    return sa.Float(precision=53)  # DOUBLE on MariaDB


def table_for(table: pl.DataFrame, name: str, metadata: sa.MetaData, key: tuple[str, ...] = KEY) -> sa.Table:
    columns = [sa.Column(column, _column_type(dtype), primary_key=column in key, nullable=column not in key)
               for column, dtype in table.schema.items()]
    return sa.Table(name, metadata, *columns)


def write_sql(table: pl.DataFrame, url: str, name: str, key: tuple[str, ...] = KEY) -> int:
    """Replace the rows of ``table``'s keys in ``name`` at ``url`` (primary ``key``); returns the rows written."""
    if not name.replace("_", "").isalnum():
        raise ConfigError(f"table name {name!r}: use letters, digits and underscores")
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    except (sa.exc.ArgumentError, ImportError) as err:
        raise ConfigError(f"database URL {masked(url)}: {str(err).splitlines()[0]}") from None
    target = table_for(table, name, sa.MetaData(), key)
    try:
        target.metadata.create_all(engine)  # only when absent
        _add_missing_columns(engine, target)
        reported = table.select("site", "period", "period_start").unique().sort("site", "period", "period_start")
        with engine.begin() as connection:  # one transaction: readers see the old rows or the new ones
            for site, period, start in reported.iter_rows():
                connection.execute(target.delete().where(target.c.site == site, target.c.period == period,
                                                         target.c.period_start == start))
            if table.height:
                connection.execute(target.insert(), table.to_dicts())
    except sa.exc.SQLAlchemyError as err:
        raise classify(err, what=f"writing table {name} at {masked(url)}") from None
    finally:
        engine.dispose()
    return table.height


def _add_missing_columns(engine: sa.Engine, target: sa.Table) -> None:
    """A level that appears later (e.g. a new pool) becomes a new nullable column, before the rows
    are written (DDL commits on its own on MariaDB, so it stays outside the row transaction)."""
    present = {column["name"] for column in sa.inspect(engine).get_columns(target.name)}
    with engine.begin() as connection:
        for column in target.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                connection.exec_driver_sql(f"ALTER TABLE {target.name} ADD COLUMN {column.name} {kind} NULL")
