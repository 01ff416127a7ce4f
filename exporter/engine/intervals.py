"""Generic interval algebra over (lazy) frames: union, clipping to parents, overlap.

No domain knowledge: every column name is a parameter. Conventions:
- Intervals are half-open ``[start, end)``; ``start`` must not be null.
- ``end = null`` means "still open"; functions that need a bound close it at ``open_end``
  (when a function accepts ``open_end=None``, open intervals stay open and results keep null).
- Empty intervals (``end <= start``) cover no time.
- Functions return LazyFrames and never collect (the eager, numpy clip is ``eager_clip``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from exporter.timetype import TIME

MICROSECONDS_PER_HOUR = 3_600_000_000
# Stand-in for "open" while sorting/merging when no open_end is given; mapped back to null.
_FAR_FUTURE = datetime(9999, 12, 31)


def duration_hours(start: str | pl.Expr, end: str | pl.Expr) -> pl.Expr:
    """Hours between two datetime expressions as Float64 (negative if end < start)."""
    start_expr = pl.col(start) if isinstance(start, str) else start
    end_expr = pl.col(end) if isinstance(end, str) else end
    micros = (end_expr - start_expr).dt.total_microseconds()
    return micros.cast(pl.Float64) / MICROSECONDS_PER_HOUR


def closed_end(end: str, open_end: datetime | None) -> pl.Expr:
    """``end`` with nulls replaced by ``open_end`` (or a far-future stand-in if None)."""
    bound = _FAR_FUTURE if open_end is None else open_end
    return pl.col(end).fill_null(pl.lit(bound, dtype=pl.Datetime("us")))


def union_intervals(
    frame: pl.LazyFrame,
    *,
    by: Sequence[str],
    start: str = "start",
    end: str = "end",
    open_end: datetime | None = None,
) -> pl.LazyFrame:
    """Merge overlapping or touching intervals per key.

    Input: ``by`` + ``start`` + ``end`` (other columns are ignored).
    Output: ``by`` + ``start`` + ``end``, sorted by ``by`` + ``start``; per key the intervals are
    disjoint and non-touching. Null ends are closed at ``open_end``; if ``open_end`` is None they
    stay open and a merged interval containing an open one has a null end.
    """
    by = list(by)
    ordered = (
        frame.select(*by, pl.col(start), closed_end(end, open_end).alias(end))
        .filter(pl.col(start).is_not_null() & (pl.col(end) > pl.col(start)))
        .sort([*by, start, end], nulls_last=True)
        .with_columns(__new_key=key_starts(by))
    )
    # Reach = the latest end of the key's earlier rows; a row past it starts a new merged run.
    reach = running_max(end, pl.col("__new_key")).shift(1)
    runs = ordered.with_columns(__run=(pl.col("__new_key") | (pl.col(start) > reach)).cum_sum())
    first_of_run = pl.col("__run") != pl.col("__run").shift(1).fill_null(-1)
    last_of_run = pl.col("__run") != pl.col("__run").shift(-1).fill_null(-1)
    merged = runs.select(
        *by,
        pl.when(first_of_run).then(pl.col(start)).forward_fill().alias(start),
        running_max(end, first_of_run).alias(end),
        last_of_run.alias("__last"),
    ).filter(pl.col("__last")).drop("__last")
    if open_end is None:
        merged = merged.with_columns(
            pl.when(pl.col(end) == _FAR_FUTURE).then(None).otherwise(pl.col(end)).alias(end)
        )
    end_dtype = frame.collect_schema()[end]
    if isinstance(end_dtype, pl.Datetime):  # running_max works in microseconds
        merged = merged.with_columns(pl.col(end).cast(end_dtype))
    return merged


def key_starts(by: Sequence[str]) -> pl.Expr:
    """True where a frame sorted by ``by`` starts a new key (no hashing of the key columns)."""
    first_row = pl.int_range(pl.len()) == 0
    return pl.any_horizontal(first_row, *(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by))


def running_max(column: str, group_starts: pl.Expr) -> pl.Expr:
    """Running max of the datetime ``column`` within runs of rows; a run begins where
    ``group_starts`` is True.

    A windowed cum_max over ~10^5 groups is slow; instead the times (Int64 microseconds) are
    offset by run number × 2^64 in Int128, so one running max never crosses a run boundary.
    """
    offset = group_starts.cum_sum().cast(pl.Int128) * pl.lit(1 << 64, dtype=pl.Int128)
    micros = pl.col(column).dt.epoch("us").cast(pl.Int128)
    return ((micros + offset).cum_max() - offset).cast(pl.Int64).cast(pl.Datetime("us"))


def duplicate_overlap(
    frame: pl.LazyFrame,
    *,
    by: Sequence[str],
    start: str = "start",
    end: str = "end",
    open_end: datetime,
    hours: str = "overlap_hours",
) -> pl.LazyFrame:
    """Each row with the hours it overlaps time already covered by its key's earlier rows.

    Rows are ordered per key by (start, end) (ties keep input order). Output: every input column
    plus ``hours`` (>= 0). Per key, Σ ``hours`` = Σ row hours − hours of the union, so the
    overlap can be recorded (e.g. as duplicate hours) instead of being dropped silently.
    """
    by = list(by)
    return (
        frame.with_columns(__end=closed_end(end, open_end))
        .sort([*by, start, "__end"], maintain_order=True, nulls_last=True)
        .with_columns(__new_key=key_starts(by))
        .with_columns(
            __reach=pl.when(pl.col("__new_key")).then(None)
            .otherwise(running_max("__end", pl.col("__new_key")).shift(1))
        )
        .with_columns(
            pl.when(pl.col("__reach").is_null())
            .then(0.0)
            .otherwise(
                pl.max_horizontal(
                    duration_hours(pl.col(start), pl.min_horizontal("__end", "__reach")), 0.0
                )
            )
            .alias(hours)
        )
        .drop("__end", "__reach", "__new_key")
    )


def clip_to_parent(
    children: pl.LazyFrame,
    parents: pl.LazyFrame,
    *,
    by: Sequence[str],
    start: str = "start",
    end: str = "end",
    open_end: datetime,
    original_start: str = "original_start",
    original_end: str = "original_end",
    trimmed: str = "trimmed",
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Cut every child into its pieces inside and outside the union of its key's parents.

    Inputs: ``children`` with ``by`` + ``start`` + ``end`` (+ any columns); ``parents`` with
    ``by`` + ``start`` + ``end``. Null ends (both sides) are closed at ``open_end``.
    Returns ``(inside, outside)``, both with every child column plus ``original_start``/
    ``original_end`` (the child's raw window; kept if already set, so repeated clipping keeps
    the rawest window) and ``trimmed`` (Boolean: the piece differs from the child's window).
    A child spanning several parent eras yields several inside pieces; a child with no parent
    (or a null key) is one outside piece. Per child: inside hours + outside hours = its hours
    (closed at ``open_end``). A piece ending at ``open_end`` of an open child keeps a null end.
    """
    by = list(by)
    columns = children.collect_schema().names()
    base = _with_original_window(children, columns, start, end, original_start, original_end)
    base = base.with_row_index("__child").with_columns(
        __cs=pl.col(start), __ce=closed_end(end, open_end)
    )
    eras = union_intervals(parents, by=by, start=start, end=end, open_end=open_end).rename(
        {start: "__ps", end: "__pe"}
    )
    pieces = (
        base.join(eras, on=by, how="inner")
        .with_columns(
            __s=pl.max_horizontal("__cs", "__ps"), __e=pl.min_horizontal("__ce", "__pe")
        )
        .filter(pl.col("__s") < pl.col("__e"))
        .select("__child", "__s", "__e")
    )
    gaps = _gaps_between_pieces(base.select("__child", "__cs", "__ce"), pieces)
    out_columns = [c for c in columns if c != trimmed]  # a re-clipped child gets a fresh flag
    out_columns += [c for c in (original_start, original_end) if c not in columns]
    return (
        _pieces_as_children(base, pieces, out_columns, start, end, open_end, trimmed),
        _pieces_as_children(base, gaps, out_columns, start, end, open_end, trimmed),
    )


def _with_original_window(
    frame: pl.LazyFrame,
    columns: list[str],
    start: str,
    end: str,
    original_start: str,
    original_end: str,
) -> pl.LazyFrame:
    """Set original_start/original_end from start/end unless a raw window is already recorded."""
    if original_start not in columns:
        return frame.with_columns(
            pl.col(start).alias(original_start), pl.col(end).alias(original_end)
        )
    recorded = pl.col(original_start).is_not_null()
    return frame.with_columns(
        pl.when(recorded).then(pl.col(original_start)).otherwise(pl.col(start)).alias(original_start),
        pl.when(recorded).then(pl.col(original_end)).otherwise(pl.col(end)).alias(original_end),
    )


def _gaps_between_pieces(children: pl.LazyFrame, pieces: pl.LazyFrame) -> pl.LazyFrame:
    """Pieces of each child (``__child``, ``__cs``, ``__ce``) not covered by its sorted pieces."""
    ordered = pieces.join(children, on="__child").sort("__child", "__s")
    same_child = pl.col("__child") == pl.col("__child").shift(1)  # sorted: no window needed
    before = ordered.with_columns(
        __gs=pl.when(same_child).then(pl.col("__e").shift(1)).otherwise(pl.col("__cs")), __ge=pl.col("__s")
    )
    after = ordered.group_by("__child").agg(__gs=pl.col("__e").max(), __ge=pl.col("__ce").first())
    untouched = children.join(pieces.select("__child").unique(), on="__child", how="anti").select(
        "__child", __gs=pl.col("__cs"), __ge=pl.col("__ce")
    )
    trailing = pl.concat([before.select("__child", "__gs", "__ge"), after], how="vertical")
    # An untouched child stays whole, even if empty or unbounded, so no child is lost.
    return (
        pl.concat([trailing.filter(pl.col("__gs") < pl.col("__ge")), untouched], how="vertical")
        .rename({"__gs": "__s", "__ge": "__e"})
    )


def _pieces_as_children(
    base: pl.LazyFrame,
    pieces: pl.LazyFrame,
    columns: list[str],
    start: str,
    end: str,
    open_end: datetime,
    trimmed: str,
) -> pl.LazyFrame:
    """Child rows re-windowed to their pieces (``__child``, ``__s``, ``__e``), sorted by child."""
    still_open = pl.col(end).is_null() & (pl.col("__e") == open_end)
    return (
        pieces.join(base, on="__child", how="inner")
        .sort("__child", "__s", nulls_last=True)
        .with_columns(
            ((pl.col("__s") != pl.col("__cs")) | (pl.col("__e") != pl.col("__ce")))
            .fill_null(False)
            .alias(trimmed),
            pl.col("__s").alias(start),
            pl.when(still_open).then(None).otherwise(pl.col("__e")).alias(end),
        )
        .select(*columns, trimmed)
    )


def hours_between(start: str | pl.Expr, end: str | pl.Expr, *, snapshot_time: datetime) -> pl.Expr:
    """Hours in [start, end) with a null end read as ``snapshot_time``; negative or unknown -> 0."""
    start = pl.col(start) if isinstance(start, str) else start
    end = pl.col(end) if isinstance(end, str) else end
    micros = (end.fill_null(pl.lit(snapshot_time, dtype=TIME)) - start).dt.total_microseconds()
    return (micros.cast(pl.Float64) / MICROSECONDS_PER_HOUR).clip(lower_bound=0.0).fill_null(0.0)


def overlap_seconds(start: datetime, end: datetime, *, open_end: datetime) -> pl.Expr:
    """Seconds of each row's [``start``, ``end``) columns inside the window [start, end).

    A null end is closed at ``open_end``; a row outside the window counts 0."""
    lo = pl.max_horizontal(pl.col("start"), pl.lit(start, dtype=TIME))
    hi = pl.min_horizontal(closed_end("end", open_end), pl.lit(end, dtype=TIME))
    micros = (hi - lo).dt.total_microseconds().cast(pl.Float64)
    return pl.max_horizontal(micros, 0.0) / 1_000_000
