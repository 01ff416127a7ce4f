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
from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from exporter.ledger import deltas_from_steps, sums_by_sorted_key


def grid_size(*, start: datetime, end: datetime, step: timedelta) -> int:
    """Number of grid points t in [start, end) spaced ``step`` apart."""
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    return max(0, math.ceil((end - start) / step))


def grid_end(*, start: datetime, end: datetime, step: timedelta) -> datetime:
    """End of the last grid cell: start + n × step (>= end when end - start is not a multiple)."""
    return start + grid_size(start=start, end=end, step=step) * step


def time_weighted_grid(
    steps: pl.LazyFrame,
    *,
    keys: Sequence[str],
    values: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta,
    time: str = "time",
) -> pl.LazyFrame:
    """Exact cell means of step functions on the regular grid.

    Input: ``keys`` + ``time`` + ``values``: each row is the level holding from ``time`` until
    the key's next row (level 0 before the first row). Output: ``keys`` + ``time`` + ``values``,
    one row per key (every key present in the input) per grid point, sorted by keys + time;
    a value is the mean of the level over ``[t, t + step)`` (0 where nothing happens).
    """
    deltas = deltas_from_steps(steps, keys=keys, values=values, time=time)
    return grid_means_from_deltas(
        deltas, keys=keys, values=values, start=start, end=end, step=step, time=time
    )


def grid_means_from_deltas(
    deltas: pl.LazyFrame,
    *,
    keys: Sequence[str],
    values: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta,
    time: str = "time",
) -> pl.LazyFrame:
    """Like :func:`time_weighted_grid`, but from signed deltas (``keys`` + ``time`` + ``values``).

    The deltas need not be sorted or aggregated: several rows may share a key and time.
    """
    keys, values = list(keys), list(values)
    n = grid_size(start=start, end=end, step=step)
    key_index = deltas.select(keys).unique().sort(keys).with_row_index("__key")
    cells = pl.LazyFrame({"__cell": pl.int_range(0, n, dtype=pl.Int64, eager=True)}).with_columns(
        (pl.lit(start, dtype=pl.Datetime("us")) + pl.col("__cell") * step).alias(time)
    )
    weights = _cell_weights(
        deltas.join(key_index, on=keys, how="inner", nulls_equal=True),
        values=values,
        start=start,
        step=step,
        n=n,
        time=time,
    )
    # Dense rows in (key, cell) order; "__pos" lets both sides join as sorted (a merge join).
    dense = (
        key_index.join(cells, how="cross", maintain_order="left_right")
        .with_columns(__pos=pl.col("__key").cast(pl.Int64) * n + pl.col("__cell"))
        .set_sorted("__pos")
        .join(weights, on="__pos", how="left", maintain_order="left")
    )
    return dense.select(
        *keys,
        time,
        *(
            (
                pl.col(f"__full_{v}").fill_null(0.0).cum_sum().shift(1).over("__key").fill_null(0.0)
                + pl.col(f"__part_{v}").fill_null(0.0)
            ).alias(v)
            for v in values
        ),
    )


def _cell_weights(
    deltas: pl.LazyFrame,
    *,
    values: list[str],
    start: datetime,
    step: timedelta,
    n: int,
    time: str,
) -> pl.LazyFrame:
    """Per ``__pos`` (= key × n + cell): Σ delta (``__full_<v>``) and Σ delta × fraction of cell after it."""
    step_us = step // timedelta(microseconds=1)
    offset = (pl.col(time) - pl.lit(start, dtype=pl.Datetime("us"))).dt.total_microseconds()
    cell = pl.max_horizontal(offset // step_us, 0)
    remaining = pl.min_horizontal((pl.col("__cell") + 1) * step_us - offset, step_us)
    return (
        deltas.filter(offset < n * step_us)
        .with_columns(__cell=cell)
        .with_columns(__frac=remaining.cast(pl.Float64) / step_us)
        .select(
            __pos=pl.col("__key").cast(pl.Int64) * n + pl.col("__cell"),
            *(pl.col(v).alias(f"__full_{v}") for v in values),
            *((pl.col(v) * pl.col("__frac")).alias(f"__part_{v}") for v in values),
        )
        .pipe(
            sums_by_sorted_key,
            by=["__pos"],
            values=[f"__{kind}_{v}" for kind in ("full", "part") for v in values],
        )
    )
