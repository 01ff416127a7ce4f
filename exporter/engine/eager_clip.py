"""Clipping children to their key's parents on eager frames and numpy arrays: ``clip_to_parent``'s
pieces, found with integer keys and one sort (``intervals``' conventions on times; unlike
``intervals``, these functions take and return DataFrames or arrays and compute at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl


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
    row-encode the key columns, text and all (the occupied books' clip, 323k children by two text
    columns: 0.63 -> 0.42 s, BENCHMARKS.md session 11).
    """
    child_key, parent_key = key_codes(children, parents, by)
    open_micros = _micros(open_end)
    span = _closed_micros(children, open_micros)
    parent_start, parent_end = _closed_micros(parents, open_micros)
    usable = (parent_key >= 0) & ~parents.get_column("start").is_null().to_numpy() & (parent_end > parent_start)
    row, start, end = clip_arrays(child_key, *span, parent_key[usable], parent_start[usable], parent_end[usable],
                                  outside=outside)
    time = children.schema["start"]
    still_open = children.get_column("end").is_null().gather(row).to_numpy() & (end == open_micros)
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
    missing = np.zeros(left.height + right.height, dtype=bool)
    for position, column in enumerate(by):
        values = pl.concat([left.get_column(column), right.get_column(column)])
        if values.dtype == pl.String:
            coded = values.cast(pl.Categorical(pl.Categories.random())).to_physical()
        else:
            coded = values.rank("dense")
        missing |= coded.is_null().to_numpy()
        column_codes = coded.fill_null(0).cast(pl.Int64).to_numpy()
        if position == 0:
            codes = column_codes
        else:  # both below the row count, so the pair fits; numbered densely again (they index arrays)
            codes = np.unique(codes * (int(column_codes.max(initial=0)) + 1) + column_codes, return_inverse=True)[1]
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
    bounds, rank = np.unique(np.concatenate([parent_start[mine], parent_end[mine]]), return_inverse=True)
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


def _closed_micros(frame: pl.DataFrame, open_end: int) -> tuple[np.ndarray, np.ndarray]:
    """``start`` and ``end`` (null: ``open_end``, in microseconds) as int64 microseconds. A null start (0: 1970-01-01,
    where ``clip_to_parent`` keeps it null) breaks the conventions: spans never have one."""
    start = frame.get_column("start").cast(pl.Datetime("us")).to_physical().fill_null(0).to_numpy()
    end = frame.get_column("end").cast(pl.Datetime("us")).to_physical().fill_null(open_end).to_numpy()
    return start.astype(np.int64), end.astype(np.int64)


def _micros(moment: datetime) -> int:
    return pl.Series([moment], dtype=pl.Datetime("us")).to_physical()[0]
