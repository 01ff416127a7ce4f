"""Time-weighted resampling of step functions onto a regular grid.

No domain knowledge: keys, value and time columns are parameters. The grid has points
``t_k = start + k * step`` for every ``t_k`` in ``[start, end)``; the value at ``t_k`` is the
EXACT mean of the step function over the cell ``[t_k, t_k + step)`` (not a point sample), so
Σ value × step over the grid equals the integral of the step function over
``[start, start + n * step)`` — resource-hours are conserved.

Method: a delta of size v at time τ inside cell k contributes v × (t_{k+1} − τ) / step to cell
k's mean and v to every later cell; deltas before ``start`` are fully in effect from cell 0.
So per (key, cell) we sum the deltas ("full") and their fractional weights ("part"); the cell
mean is the sum of "full" over earlier cells plus "part". Vectorised: no per-cell Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from exporter.engine.runs import running_sums, runs


def grid_size(*, start: datetime, end: datetime, step: timedelta) -> int:
    """Number of grid points t in [start, end) spaced ``step`` apart."""
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    return max(0, math.ceil((end - start) / step))


def grid_end(*, start: datetime, end: datetime, step: timedelta) -> datetime:
    """End of the last grid cell: start + n × step (>= end when end - start is not a multiple)."""
    return start + grid_size(start=start, end=end, step=step) * step


@dataclass(frozen=True)
class DenseGrid:
    """Cell means of several step functions, one block of ``cells`` rows per key: all of them
    (``values``) or the blocks of a few keys at a time (``block``), made when asked for."""

    keys: pl.DataFrame  # the distinct keys, sorted: key k owns rows k × cells .. (k + 1) × cells − 1
    cells: int  # grid points per key
    times: pl.Series  # the grid times t_0 .. t_{cells−1}
    weights: pl.DataFrame  # the sparse per-cell sums the means are made of (_cell_weights), by __pos
    names: tuple[str, ...]  # the values, one Float64 column each

    @cached_property
    def values(self) -> pl.DataFrame:
        """One Float64 column per value, keys × cells rows, key-major."""
        (whole,) = self.blocks(max(self.keys.height, 1))
        return whole

    def blocks(self, count: int) -> Iterator[pl.DataFrame]:
        """The rows of ``values`` ``count`` keys at a time, in key order (count × cells rows each, the
        last may be shorter; one empty block when there are no keys), the same bits: each key's
        running level is summed within the key. A consumer that takes a few keys at a time never
        holds every key's means (fresh memory the kernel maps page by page: ~half of the timeline
        grid's CPU on 500 x 10 was page faults)."""
        # One column at a time is single-threaded work; two threads overlap them (no GIL held).
        # The same two for every block: glibc gives a new thread its own arena and keeps the
        # freed blocks there (a pool per block: +160 MB of RSS kept after the grid on 500 x 10).
        with ThreadPoolExecutor(max_workers=2) as pool:
            for first in range(0, max(self.keys.height, 1), count):
                yield self._block(first, min(count, self.keys.height - first), pool)

    def _block(self, first: int, count: int, pool: ThreadPoolExecutor) -> pl.DataFrame:
        n = self.cells
        pos = self.weights.get_column("__pos").to_numpy()
        lo, hi = np.searchsorted(pos, [first * n, (first + count) * n])
        weights = self.weights.slice(lo, hi - lo).with_columns(pl.col("__pos") - first * n)
        size = count * n
        fill = _level_fill(weights["__pos"].to_numpy(), size=size, n=n) if size else None
        columns = list(pool.map(lambda v: _cell_means(weights, v, size=size, n=n, fill=fill), self.names))
        return pl.DataFrame(columns)

    def long(self, labels: pl.DataFrame | None = None) -> pl.DataFrame:
        """One row per (key, grid time): ``labels`` (default: the keys; one row per key, in key
        order) + time + values."""
        labels = self.keys if labels is None else labels
        position = pl.int_range(0, self.keys.height * self.cells, dtype=pl.Int64, eager=True)
        n = max(self.cells, 1)
        parts = [labels.select(pl.all().gather(position // n)), self.times.gather(position % n).to_frame()]
        return pl.concat([*parts, self.values] if self.values.width else parts, how="horizontal")


def dense_grid_from_deltas(
    deltas: pl.LazyFrame,
    *,
    keys: Sequence[str],
    values: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta,
    time: str = "time",
) -> DenseGrid:
    """Exact cell means of step functions on the regular grid, from signed deltas.

    ``deltas``: ``keys`` + ``time`` + ``values``, the change of each key's level at each time
    (unsorted, several rows may share a key and time; level 0 before a key's first change).
    Every key gets every grid point; a value is the mean of the level over ``[t, t + step)``.
    Collects the deltas (the grid is built eagerly).
    """
    keys, values = list(keys), list(values)
    n = grid_size(start=start, end=end, step=step)
    # Collected once: the key index and the weights both read the deltas, and a lazy plan would
    # be run for each (the timeline's: its spans' series and join to key codes twice, +0.4 s CPU)
    deltas = deltas.lazy().collect(engine="in-memory").lazy()
    key_index = deltas.select(keys).unique().sort(keys).with_row_index("__key").collect()
    weights = _cell_weights(
        deltas.join(key_index.lazy(), on=keys, how="inner", nulls_equal=True, maintain_order="left"),
        values=values,
        start=start,
        step=step,
        n=n,
        time=time,
    )
    del deltas
    times = pl.datetime_range(start, start + step * max(n - 1, 0), step, time_unit="us", eager=True).head(n)
    return DenseGrid(keys=key_index.drop("__key"), cells=n, times=times.alias(time), weights=weights,
                     names=tuple(values))


def _level_fill(pos: np.ndarray, *, size: int, n: int) -> tuple[np.ndarray, ...]:
    """How :func:`_cell_means` sums and carries the running levels forward, the same for every
    value: (where each key's changes begin and end, which changes hold into a later cell of their
    key, the order of the cells where a level starts to hold, how many cells each holds)."""
    after = pos + 1  # the level reached in a cell holds from the next cell of the same key on
    inside = after % n != 0
    # 0 from each key's first cell, each running level from the cell after its change on
    starts = np.concatenate([np.arange(0, size, n), after[inside]])
    order = np.argsort(starts, kind="stable")
    return *runs(pos // n), inside, order, np.diff(starts[order], append=size)


def _cell_means(weights: pl.DataFrame, value: str, *, size: int, n: int,
                fill: tuple[np.ndarray, ...] | None) -> pl.Series:
    """Dense cell means of one value over ``size`` = keys × n cells (key-major), from the
    sparse per-``__pos`` sums: level before the cell (Σ earlier ``full``) + ``part``.

    Only cells with deltas are touched: the running level is summed over those alone (adding
    the zeros of quiet cells would not change a bit) and carried forward to the quiet cells.
    ``fill``: :func:`_level_fill` of the weights, shared between the values (None: no cells).
    """
    if size == 0:
        return pl.Series(value, [], dtype=pl.Float64)
    pos = weights["__pos"].to_numpy()
    key_starts, key_ends, inside, order, held = fill
    # each key's running level, as polars' cum_sum over the key adds it (0.15 s CPU for the five
    # values on 500 x 10, 0.04 s here)
    running = running_sums(weights[f"__full_{value}"].to_numpy().copy(), key_starts.tolist(), key_ends.tolist())
    # The level before each cell: a forward fill of the running levels, as one repeat.
    levels = np.concatenate([np.zeros(size // n), running[inside]])
    means = np.repeat(levels[order], held)
    # + part, 0.0 in the quiet cells, where it changes no bit: polars' cum_sum starts at 0.0, so
    # no level is -0.0 (checked with polars 2.1.0: tests/engine/test_resample.py, bit for bit)
    means[pos] += weights[f"__part_{value}"].to_numpy()
    return pl.Series(value, means)


def _cell_weights(
    deltas: pl.LazyFrame,
    *,
    values: list[str],
    start: datetime,
    step: timedelta,
    n: int,
    time: str,
) -> pl.DataFrame:
    """Per ``__pos`` (= key × n + cell), sorted: Σ delta (``__full_<v>``) and Σ delta × fraction of
    cell after it (``__part_<v>``), each cell's deltas added in input order (:func:`_sums_by_pos`)."""
    step_us = step // timedelta(microseconds=1)
    offset = (pl.col(time) - pl.lit(start, dtype=pl.Datetime("us"))).dt.total_microseconds()
    cell = pl.max_horizontal(offset // step_us, 0)
    remaining = pl.min_horizontal((pl.col("__cell") + 1) * step_us - offset, step_us)
    terms = (
        deltas.filter(offset < n * step_us)
        .with_columns(__cell=cell)
        .with_columns(__frac=remaining.cast(pl.Float64) / step_us)
        .select(
            __pos=pl.col("__key").cast(pl.Int64) * n + pl.col("__cell"),
            *(pl.col(v).alias(f"__full_{v}") for v in values),
            *((pl.col(v) * pl.col("__frac")).alias(f"__part_{v}") for v in values),
        )
    ).collect(engine="in-memory")
    return _sums_by_pos(terms, [f"__{kind}_{v}" for kind in ("full", "part") for v in values])


def _sums_by_pos(terms: pl.DataFrame, values: list[str]) -> pl.DataFrame:
    """``sweepline.sums_by_sorted_key(by=["__pos"])`` of ``terms`` in numpy, the same sums bit for
    bit: the rows in the order of ``__pos`` (stable: each position and its row number packed into
    one integer, sorted), each position's terms added one after another (as polars' list sum
    does), in rounds over the positions with at least that many terms, the longest first (the
    500 x 10 timeline's 1.2 M deltas into 588k cells: 0.69 s CPU in polars, its sort, list
    group-by and list sums)."""
    pos = terms.get_column("__pos").to_numpy()
    row_bits = max(len(pos) - 1, 0).bit_length()
    if len(pos) and pos.min() >= 0 and int(pos.max()).bit_length() + row_bits <= 63:
        packed = (pos << row_bits) | np.arange(len(pos))
        packed.sort()
        order, pos = packed & ((1 << row_bits) - 1), packed >> row_bits
    else:
        order = np.argsort(pos, kind="stable")
        pos = pos[order]
    starts, ends = runs(pos)
    longest = np.argsort(starts - ends, kind="stable")  # the positions with the most terms first
    first, length = starts[longest], (ends - starts)[longest]
    # the input rows of each round's terms: round r adds the r-th term of every position that has one
    rounds = [order[first[:np.searchsorted(-length, -r)] + r] for r in range(int(length[0]) if len(length) else 0)]
    sums = {"__pos": pos[starts]}
    for value in values:
        column = terms.get_column(value).to_numpy()
        total = column[rounds[0]] if rounds else np.zeros(0)
        for rows in rounds[1:]:
            total[:len(rows)] += column[rows]
        sums[value] = np.empty_like(total)
        sums[value][longest] = total
    return pl.DataFrame(sums)
