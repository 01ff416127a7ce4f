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

import polars as pl

# Σ|terms| ≤ 2^HEADROOM_BITS quanta: every partial sum of the high parts is an integer below
# 2^53, so it is exact in Int64 and in its conversion back to Float64.
HEADROOM_BITS = 50
# The smallest quantum, 2^-1000, still a normal float: a series smaller than that (all zeros,
# or noise) keeps every term in the low part, which is then summed as before.
MIN_EXPONENT = -1000


def running_sum_before(terms: pl.Expr, *, over: str | Sequence[str]) -> pl.Expr:
    """Per group of ``over`` (rows in order): Σ of the terms before each row, 0.0 for the first;
    the exact sum rounded once (see the module docstring). Terms must be finite."""
    exponent = pl.max_horizontal(terms.abs().sum().log(2).ceil() - HEADROOM_BITS, pl.lit(float(MIN_EXPONENT)))
    quantum = pl.lit(2.0).pow(exponent).over(over)  # per group, an exact power of two: scaling never rounds
    high = (terms / quantum).cast(pl.Int64)  # truncated towards zero, |high| ≤ 2^50
    low = terms - high.cast(pl.Float64) * quantum  # exact: what the truncation dropped, |low| < quantum
    high_before = high.cum_sum().shift(1, fill_value=0).over(over)
    low_before = low.cum_sum().shift(1, fill_value=0.0).over(over)
    return high_before.cast(pl.Float64) * quantum + low_before
