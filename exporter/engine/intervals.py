"""Generic interval algebra over (lazy) frames: union, clipping to parents, overlap.

No domain knowledge: every column name is a parameter. Conventions:
- Intervals are half-open ``[start, end)``; ``start`` must not be null.
- ``end = null`` means "still open"; functions that need a bound close it at ``open_end``
  (when a function accepts ``open_end=None``, open intervals stay open and results keep null).
- Empty intervals (``end <= start``) cover no time.
- Functions return LazyFrames and never collect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
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


def clip_rows_to_parent(
    children: pl.DataFrame,
    parents: pl.DataFrame,
    *,
    by: Sequence[str],
    open_end: datetime,
    outside: bool = False,
) -> pl.DataFrame:
    """``clip_to_parent`` of eager frames, one side (``outside``: the pieces outside the parents),
    without its ``trimmed`` column: every child column, the pieces in the order of their child then
    start. ``children`` must carry ``original_start``/``original_end`` (null: the child's own window).

    The same pieces, found with integer keys in numpy: the joins and sorts of ``clip_to_parent``
    row-encode the key columns, text and all (on 323k children by two text columns: 0.63 -> 0.25 s
    with the books, BENCHMARKS.md session 11).
    """
    child_key, parent_key = key_codes(children, parents, by)
    span = _closed_micros(children, open_end)
    parent_start, parent_end = _closed_micros(parents, open_end)
    usable = (parent_key >= 0) & ~parents.get_column("start").is_null().to_numpy() & (parent_end > parent_start)
    row, start, end = clip_arrays(child_key, *span, parent_key[usable], parent_start[usable], parent_end[usable],
                                  outside=outside)
    time = children.schema["start"]
    still_open = children.get_column("end").is_null().gather(row).to_numpy() & (end == _micros(open_end))
    recorded = pl.col("original_start").is_not_null()
    return _rows(children, row).with_columns(
        pl.when(recorded).then(pl.col("original_start")).otherwise(pl.col("start")).alias("original_start"),
        pl.when(recorded).then(pl.col("original_end")).otherwise(pl.col("end")).alias("original_end"),
    ).with_columns(
        pl.Series("start", start).cast(pl.Datetime("us")).cast(time),
        pl.Series("end", np.where(still_open, 0, end)).cast(pl.Datetime("us")).cast(children.schema["end"])
        .scatter(np.flatnonzero(still_open), None),
    )


def _rows(frame: pl.DataFrame, row: np.ndarray) -> pl.DataFrame:
    """``frame[row]`` for ``row`` ascending: ``frame`` itself when every row is there once, a
    filter when none is there twice (gathering text columns costs 5x as much)."""
    if len(row) and (row[1:] == row[:-1]).any():
        return frame[row]
    if len(row) == frame.height:
        return frame
    kept = np.zeros(frame.height, dtype=bool)
    kept[row] = True
    return frame.filter(pl.Series(kept))


def key_codes(left: pl.DataFrame, right: pl.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """An int64 per row of each frame, equal where the rows' ``by`` values are equal; -1 where one
    of them is null (a null key matches nothing, as in a join). Text columns are coded by a
    categorical cast of their own (hashing each value once), other columns by dense rank."""
    codes = np.zeros(0, dtype=np.int64)
    missing = np.zeros(left.height + right.height, dtype=bool)
    for column in by:
        values = pl.concat([left.get_column(column), right.get_column(column)])
        if values.dtype == pl.String:
            coded = values.cast(pl.Categorical(pl.Categories.random())).to_physical()
        else:
            coded = values.rank("dense")
        missing |= coded.is_null().to_numpy()
        column_codes = coded.fill_null(0).cast(pl.Int64).to_numpy()
        if column == by[0]:
            codes = column_codes
        else:  # both below the row count, so the pair fits; numbered densely again (they index arrays)
            codes = _ranked(codes * (int(column_codes.max(initial=0)) + 1) + column_codes)[1]
    codes = np.where(missing, -1, codes)
    return codes[:left.height], codes[left.height:]


def clip_arrays(
    child_key: np.ndarray, child_start: np.ndarray, child_end: np.ndarray,
    parent_key: np.ndarray, parent_start: np.ndarray, parent_end: np.ndarray, *, outside: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of the children inside their key's parents (``outside``: outside them), as
    ``(child index, start, end)`` in the order of child then start: ``clip_to_parent``'s pieces on
    integer arrays (keys: -1 matches nothing; times: closed, in one unit; parents non-empty). A
    child with no inside piece is one outside piece, its whole window, even when empty.

    Times are replaced by their rank among the parents' bounds, so (key, rank) packs into one
    int64 and one sort and searchsorted order and find keys and times together."""
    # Only parents that reach into their key's children's time can change a piece: the rest are
    # left out before the sort (the maintenance masks' 645 rows are clipped by 287k commitments).
    keys = max(child_key.max(initial=-1), parent_key.max(initial=-1)) + 2  # index -1: a null key's slot
    earliest, latest = np.full(keys, np.iinfo(np.int64).max), np.full(keys, np.iinfo(np.int64).min)
    np.minimum.at(earliest, child_key, child_start)
    np.maximum.at(latest, child_key, child_end)
    mine = (parent_key >= 0) & (parent_end > earliest[parent_key]) & (parent_start < latest[parent_key])
    bounds, rank = _ranked(np.concatenate([parent_start[mine], parent_end[mine]]))
    width = len(bounds) + 1
    era_key, era_start, era_end = _eras(parent_key[mine], *np.split(rank, 2), width)
    # Per child, its key's eras from the first ending after its start to the last starting before its end.
    packed = np.where(child_key >= 0, child_key, 0) * width
    first = np.searchsorted(era_key * width + era_end + 1, packed + np.searchsorted(bounds, child_start, "right"),
                            "right")
    past = np.searchsorted(era_key * width + era_start, packed + np.searchsorted(bounds, child_end, "left"), "left")
    count = np.where((child_key >= 0) & (child_start < child_end), np.maximum(past - first, 0), 0)
    row = np.repeat(np.arange(len(child_key)), count)
    era = np.repeat(first - np.cumsum(count) + count, count) + np.arange(len(row))
    start = np.maximum(child_start[row], bounds[era_start[era]])
    end = np.minimum(child_end[row], bounds[era_end[era]])
    return _gaps(row, start, end, child_start, child_end, count) if outside else (row, start, end)


def _ranked(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``values`` sorted, and the index of each value among them (np.unique's
    inverse, without its hashing: 0.5 s on 574k int64 where one argsort takes ~0.02 s)."""
    order = np.argsort(values)
    ordered = values[order]
    new = np.ones(len(ordered), dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.cumsum(new) - 1
    return ordered[new], rank


def _eras(key: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    """key, start, end (bound ranks) of the union of each key's intervals, sorted: packed as
    key × width + rank, a running max of the ends never crosses keys (a later key packs higher)."""
    packed_start, packed_end = key * width + start, key * width + end
    order = np.argsort(packed_start)  # ties: the same run whichever comes first
    packed_start, packed_end = packed_start[order], packed_end[order]
    reach = np.maximum.accumulate(packed_end)
    new_run = np.ones(len(order), dtype=bool)
    new_run[1:] = packed_start[1:] > reach[:-1]  # touching intervals merge
    last = np.ones(len(order), dtype=bool)
    last[:-1] = new_run[1:]
    era_start, era_end = packed_start[new_run], reach[last]
    return era_start // width, era_start % width, era_end % width


def _gaps(row: np.ndarray, start: np.ndarray, end: np.ndarray, child_start: np.ndarray, child_end: np.ndarray,
          count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of each child between its inside pieces (sorted by child, then start): before
    each piece and after the last, where not empty; a child with none keeps its whole window."""
    first = np.ones(len(row), dtype=bool)
    first[1:] = row[1:] != row[:-1]
    before_start = np.where(first, child_start[row], np.roll(end, 1))
    after = np.flatnonzero(count)
    last = np.cumsum(count)[after] - 1
    # Candidates: per child with pieces, one before each piece and one after its last; per other child, its window
    cand_row = np.concatenate([row, after, np.flatnonzero(count == 0)])
    cand_start = np.concatenate([before_start, end[last], child_start[count == 0]])
    cand_end = np.concatenate([start, child_end[after], child_end[count == 0]])
    keep = (cand_start < cand_end) | (np.arange(len(cand_row)) >= len(row) + len(after))
    order = np.argsort(cand_row, kind="stable")  # per child: the gaps before its pieces, then the one after
    order = order[keep[order]]
    return cand_row[order], cand_start[order], cand_end[order]


def _closed_micros(frame: pl.DataFrame, open_end: datetime) -> tuple[np.ndarray, np.ndarray]:
    """``start`` and ``end`` (null: ``open_end``) as int64 microseconds (a null start: 0)."""
    start = frame.get_column("start").cast(pl.Datetime("us")).to_physical().fill_null(0).to_numpy()
    end = frame.get_column("end").cast(pl.Datetime("us")).to_physical().fill_null(_micros(open_end)).to_numpy()
    return start.astype(np.int64), end.astype(np.int64)


def _micros(moment: datetime) -> int:
    return pl.Series([moment], dtype=pl.Datetime("us")).to_physical()[0]
