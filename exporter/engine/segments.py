"""Generic per-key segments: make them disjoint, and cut other intervals along them.

A *segment* is an interval of a key that carries values (which columns is a parameter). Same
conventions as ``exporter.engine.intervals``: half-open ``[start, end)``, a null end is open
and closed at ``open_end`` where a bound is needed; functions return LazyFrames.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from exporter.engine.intervals import closed_end, key_starts, running_max


def first_wins(
    frame: pl.LazyFrame,
    *,
    by: Sequence[str],
    start: str = "start",
    end: str = "end",
    open_end: datetime,
    one_per_key: bool = False,
) -> pl.LazyFrame:
    """Rows trimmed so no time is covered twice per key: an earlier row (by start, end, then
    input order) keeps the overlap, a later one starts where the earlier ones reach.

    Output: every input column, rows left empty dropped, sorted by ``by`` + ``start``.
    ``one_per_key``: the caller knows each key has one row, so nothing overlaps: only the empty
    rows are dropped, in input order (no sort: 0.4 s for 330k text keys).
    """
    if one_per_key:
        return frame.filter(pl.col(start) < closed_end(end, open_end))
    by = list(by)
    new_key = pl.col("__new_key")
    return (
        frame.with_columns(__end=closed_end(end, open_end))
        .sort([*by, start, "__end"], maintain_order=True, nulls_last=True)
        .with_columns(__new_key=key_starts(by))
        .with_columns(__reach=pl.when(new_key).then(None).otherwise(running_max("__end", new_key).shift(1)))
        .with_columns(pl.max_horizontal(pl.col(start), pl.col("__reach").cast(pl.Datetime("us"))).alias(start))
        .filter(pl.col(start) < pl.col("__end"))
        .drop("__end", "__new_key", "__reach")
    )


def split_by_segments(
    children: pl.LazyFrame,
    segments: pl.LazyFrame,
    *,
    by: Sequence[str],
    take: Sequence[str],
    start: str = "start",
    end: str = "end",
    open_end: datetime,
) -> pl.LazyFrame:
    """Every child cut into its pieces inside each segment of its key, with that segment's ``take``.

    ``segments``: ``by`` + ``start`` + ``end`` + ``take``, disjoint per key (see ``first_wins``).
    Output: the child columns (``take`` replaced or added) once per non-empty piece, in child
    order then by start. Time of a child inside no segment is in no piece (``clip_to_parent``'s
    outside holds it). A piece ending at ``open_end`` of an open child keeps a null end.
    """
    by = list(by)
    columns = list(dict.fromkeys([*children.collect_schema().names(), *take]))
    parts = segments.select(*by, pl.col(start).alias("__ss"), closed_end(end, open_end).alias("__se"),
                            *(pl.col(name).alias(f"__take_{name}") for name in take))
    still_open = pl.col(end).is_null() & (pl.col("__e") == open_end)
    return (
        children.with_row_index("__child")
        .with_columns(__cs=pl.col(start), __ce=closed_end(end, open_end))
        .join(parts, on=by, how="inner")
        .with_columns(__s=pl.max_horizontal("__cs", "__ss"), __e=pl.min_horizontal("__ce", "__se"))
        .filter(pl.col("__s") < pl.col("__e"))
        .sort("__child", "__s")
        .with_columns(pl.col("__s").alias(start), pl.when(still_open).then(None).otherwise(pl.col("__e")).alias(end),
                      *(pl.col(f"__take_{name}").alias(name) for name in take))
        .select(columns)
    )
