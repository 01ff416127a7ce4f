"""Running sums rounded once: counters that integrate a long series of fractional terms.

A float running sum rounds at every addition, and a constant fractional term (a VM's share of a
host, hour after hour) rounds the same way each time: over n terms the error grows like
n × 2⁻⁵³ of the sum (10 years of hours: ~10⁻¹²), larger than the guard the live exporter adds
against counter resets (exporter.live.source). Here each term is split at a power of two
``quantum`` into a high part (an integer number of quanta, summed exactly in Int64) and the low
part the split drops (smaller than one quantum, so its rounding is negligible); the two running
sums are added once. The result is the exact sum of the earlier terms, rounded once (plus an
error below n² × 2⁻¹⁰⁰ of Σ|terms|), whatever n.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from exporter.engine.runs import runs

# Σ|terms| ≤ 2^HEADROOM_BITS quanta: every partial sum of the high parts is an integer below
# 2^53, so it is exact in Int64 and in its conversion back to Float64.
HEADROOM_BITS = 50
# The smallest quantum, 2^-1000, still a normal float: a series smaller than that (all zeros,
# or noise) keeps every term in the low part, which is then summed as before.
MIN_EXPONENT = -1000


def _quantum(terms: pl.Expr, over: str | Sequence[str]) -> pl.Expr:
    """Per group, an exact power of two (scaling by it never rounds) with Σ|terms| ≤ 2^50 of it."""
    return _quantum_of(terms.abs().sum()).over(over)


def _quantum_of(total: pl.Expr) -> pl.Expr:
    """The quantum of a group whose Σ|terms| is ``total``."""
    exponent = pl.max_horizontal(total.log(2).ceil() - HEADROOM_BITS, pl.lit(float(MIN_EXPONENT)))
    return pl.lit(2.0).pow(exponent)


def running_sum_before(terms: pl.Expr, *, over: str | Sequence[str]) -> pl.Expr:
    """Per group of ``over`` (rows in order): Σ of the terms before each row, 0.0 for the first;
    the exact sum rounded once (see the module docstring). Terms must be finite."""
    quantum = _quantum(terms, over)
    high = (terms / quantum).cast(pl.Int64)  # truncated towards zero, |high| ≤ 2^50
    low = terms - high.cast(pl.Float64) * quantum  # exact: what the truncation dropped, |low| < quantum
    high_before = high.cum_sum().shift(1, fill_value=0).over(over)
    low_before = low.cum_sum().shift(1, fill_value=0.0).over(over)
    return high_before.cast(pl.Float64) * quantum + low_before


def running_sum_before_runs(terms: pl.Series, groups: pl.Series) -> pl.Series:
    """``running_sum_before(terms, over=groups)``, the same bits, for rows whose groups each come
    in one run (backfill's samples: by series, then time). Its three window passes become one
    pass for the quantum and numpy sums over the runs: ~4x less CPU on backfill's counters
    (BENCHMARKS.md, session 8). Rows whose groups are not in runs, and terms with a NaN, an
    infinity or a null, take the expression (which raises on a non-finite term, as numpy's cast
    would not: it gives garbage)."""
    name = terms.name
    frame = pl.DataFrame({"group": groups, "terms": terms})
    starts, ends = runs(groups.to_numpy())
    values = terms.to_numpy()  # a null becomes NaN
    # each group in one run iff the runs' groups are distinct: 360 keys to compare, not every row's
    if len(starts) != groups.gather(starts).n_unique() or not np.isfinite(values).all():
        return frame.select(running_sum_before(pl.col("terms"), over="group")).to_series().alias(name)
    quanta = _settled_run_quanta(values, starts, ends)
    if quanta is None:
        quanta = frame.select(_quantum(pl.col("terms"), "group")).to_series().to_numpy()[starts]
    return pl.Series(name, sums_before_runs(values, quanta, starts, ends))


def _settled_run_quanta(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Each run's quantum from its Σ|values| added by numpy, without polars' window pass over
    every row (0.06 s of backfill's CPU on 6.3M rows, BENCHMARKS.md session 13); None when some run's
    quantum is not settled by that sum (:func:`settled_quantum`): the caller takes the expression's.
    Summed run by run: no array as long as ``values`` is made (see :func:`sums_before_runs`)."""
    sums = np.array([np.abs(values[start:end]).sum() for start, end in zip(starts.tolist(), ends.tolist())],
                    dtype=np.float64)
    return settled_quanta(sums, ends - starts)


def settled_quanta(sums: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    """:func:`settled_quantum` of numpy sums (Σ|terms| per group, added in any order) and bounds on
    each group's count of terms; None when some group's quantum is not settled (the callers then
    take another path, so a partly settled answer is of no use)."""
    quantum = settled_quantum(pl.Series(sums, dtype=pl.Float64), pl.Series(rows))
    return None if quantum.null_count() else quantum.to_numpy()


def sums_before_runs(values: np.ndarray, quanta: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per run [start, end) of finite ``values``: Σ of the values before each row, split at the
    run's quantum (``quanta``: a power of two per run) and rounded once. The sums are sequential,
    so a run's first rows get the same bits whether or not its later rows are there.

    Run by run, in buffers as long as a run: whole-length temporaries (the high and low parts and
    their sums, five arrays as long as ``values``) were fresh memory, and a fresh page cost more
    than the arithmetic on it (0.2-0.3 s of backfill's 6.3M rows, against 0.03 s; BENCHMARKS.md)."""
    before = np.empty(len(values), dtype=np.float64)
    for start, end, quantum in zip(starts.tolist(), ends.tolist(), quanta.tolist()):
        run = values[start:end]
        high = (run / quantum).astype(np.int64)  # truncated towards zero, as the expression's cast
        low = run - high.astype(np.float64) * quantum
        # each part's running sum including the row (sequential, as cum_sum in polars 2.1.0), then
        # moved one row on: the sum before each row, 0 for the run's first
        np.cumsum(high, out=high)
        np.cumsum(low, out=low)
        high[1:], low[1:] = high[:-1], low[:-1]  # numpy copies overlapping slices as if buffered
        high[0], low[0] = 0, 0.0
        np.add(high.astype(np.float64) * quantum, low, out=before[start:end])
    return before


def settled_quantum(sums: pl.Series, rows: pl.Series) -> pl.Series:
    """Per group, the quantum ``running_sum_before`` takes, from ``sums`` (Σ|terms| of the group, added
    in any order) and ``rows`` (its number of terms); null where another order of adding could
    give another quantum. Any order's sum of n non-negative terms is within (n - 1) * 2^-53 of the
    exact one (relative), so when both ends of twice that interval around ``sums`` give the same
    power of two, so does the running sum's own order (log is monotone)."""
    slack = (rows.cast(pl.Float64) + 1.0) * 2.0 ** -51
    frame = pl.DataFrame({"low": sums * (1.0 - slack), "high": sums * (1.0 + slack)})
    ends = frame.select(low=_quantum_of(pl.col("low")), high=_quantum_of(pl.col("high")))
    return ends.select(pl.when(pl.col("low") == pl.col("high")).then(pl.col("low"))).to_series().alias("quantum")
