"""Small expressions every adapter shares: typed column reads, hours, and rejection frames.

Snapshot tables arrive with whatever dtypes the extractor (or an upstream dump) chose: ids as
ints or strings, datetimes as ``Datetime`` of any unit or as text (SQLite). ``typed`` turns the
columns an adapter uses into one set of dtypes, adding absent optional columns as null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from exporter.timeutil import TIME

ID = "id"  # kind marker for ``typed``: text identifier
TEXT = "text"
NUMBER = "number"
WHEN = "time"


def typed(frame: pl.LazyFrame | pl.DataFrame, columns: Mapping[str, str]) -> pl.LazyFrame:
    """``frame`` reduced to ``columns`` ({name: kind}), cast to one dtype per kind; absent -> null."""
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    # with_columns (not select) so absent columns broadcast to the frame's height, even 0 rows.
    typed_columns = [_typed_column(name, kind, schema.get(name)) for name, kind in columns.items()]
    return lazy.with_columns(typed_columns).select(list(columns))


def typed_union(tables: Mapping[str, pl.LazyFrame | pl.DataFrame], names: tuple[str, ...],
                columns: Mapping[str, str]) -> pl.LazyFrame:
    """``typed`` rows of every table in ``names`` present in ``tables`` (e.g. a table and its
    ``shadow_`` archive), stacked, with a ``source_table`` column naming each row's table."""
    parts = [typed(tables[name], columns).with_columns(pl.lit(name).alias("source_table"))
             for name in names if name in tables]
    if not parts:
        return typed(pl.LazyFrame(), columns).with_columns(pl.lit(None, dtype=pl.String).alias("source_table"))
    return pl.concat(parts, how="vertical")


def _typed_column(name: str, kind: str, dtype: pl.DataType | None) -> pl.Expr:
    if dtype is None or dtype == pl.Null:
        target = {ID: pl.String(), TEXT: pl.String(), NUMBER: pl.Float64(), WHEN: TIME}[kind]
        return pl.lit(None, dtype=target).alias(name)
    column = pl.col(name)
    if kind == WHEN:
        if dtype == pl.String:
            return column.str.strip_chars().str.to_datetime(time_unit="us", strict=False).alias(name)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return column.cast(TIME).alias(name)
    if kind == NUMBER:
        return column.cast(pl.Float64, strict=False).alias(name)
    text = column.cast(pl.String)
    if kind == ID and dtype.is_float():
        text = column.cast(pl.Int64, strict=False).cast(pl.String)
    return text.alias(name)


def first_rule_failed(rules: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """The name of the first rule whose condition is true (a reason), else null."""
    expr = pl.lit(None, dtype=pl.String)
    for reason, condition in reversed(rules):
        expr = pl.when(condition.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr.alias("rejection_reason")


def detail_json(*columns: str) -> pl.Expr:
    """The named columns of a row as a JSON object (text), for ``rejection_detail``."""
    return pl.struct([pl.col(c).cast(pl.String) for c in columns]).struct.json_encode().alias("rejection_detail")


