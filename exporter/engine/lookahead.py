"""The look-ahead mean: at each grid time T, the mean over [T, T + H) of the windows known at T.

No domain knowledge. A window is [start, end) with a weight per column, known (visible to an
observer) during [known_from, known_until) (null until: still known). At T its contribution is
weight × |[start, end) ∩ [T, T + H)| / H when known_from <= T < known_until, else 0.

Method (exact up to float rounding, no per-grid-point loop over windows): as a function of T the
overlap is Σ_i c_i · max(0, T − b_i) with breakpoints b = (start − H, start, end − H, end) and
c = (+1, −1, −1, +1). Multiplying by the knowledge indicator turns each ramp into two events:
from a = max(b_i, known_from) it adds value a − b_i and slope 1 (× c_i), and from
a = max(b_i, known_until) it removes the same. The value at T is then Σ over events with a <= T of
w · (Δv + Δs · (T − a)): three running sums per key, read at each T by an as-of join. Values whose
magnitude is below 1e-9 of the key's largest are float residue of cancelled windows and read 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

_RAMPS = ((0, 1.0), (1, -1.0), (2, -1.0), (3, 1.0))  # (breakpoint index, coefficient)
RESIDUE = 1e-9
_KEY = "__key"


def lookahead_means(windows: pl.DataFrame, *, keys: Sequence[str], weights: Sequence[str],
                    grid: Sequence[dt.datetime], horizon: dt.timedelta,
                    also: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per key present in ``windows`` (or in ``also``, a frame of key rows) and grid time:
    keys, ``timestamp`` and the mean of each weight column over [T, T + horizon) counted from the
    windows known at T.

    ``windows``: keys, start, end, known_from, known_until (datetimes; known_until may be null) and
    the weight columns (numbers). Rows with a null start, end or known_from count nothing.
    """
    keys, weights = list(keys), list(weights)
    if not grid:
        return pl.DataFrame(schema={**{k: windows.schema[k] for k in keys}, "timestamp": pl.Datetime("us"),
                                    **{w: pl.Float64 for w in weights}})
    origin = min(grid)
    h = horizon.total_seconds()
    seconds = {name: (pl.col(name) - pl.lit(origin)).dt.total_microseconds() / 1e6
               for name in ("start", "end", "known_from", "known_until")}
    base = windows.lazy().filter(pl.col("start").is_not_null() & pl.col("end").is_not_null()
                                 & pl.col("known_from").is_not_null() & (pl.col("end") > pl.col("start"))
                                 ).select(*keys, *weights, **seconds)
    key_types = {name: windows.schema[name] for name in keys}
    extra = [also.lazy().select(keys).cast(key_types)] if also is not None else []
    # One integer per key, numbered in the keys' sort order: the sorts, running sums and the
    # as-of join below run on it instead of the (text) keys, in the same order, so every sum is
    # the same, bit for bit (measured: the sort by text keys was most of the lens' time).
    codes = pl.concat([base.select(keys), *extra]).unique().sort(keys).with_row_index(_KEY).collect()
    coded = base.join(codes.lazy(), on=keys, how="inner", nulls_equal=True, maintain_order="left").drop(keys)
    breakpoints = (pl.col("start") - h, pl.col("start"), pl.col("end") - h, pl.col("end"))
    events = []
    for index, coefficient in _RAMPS:
        b = breakpoints[index]
        for edge, sign in (("known_from", 1.0), ("known_until", -1.0)):
            a = pl.max_horizontal(b, pl.col(edge))
            events.append(coded.filter(pl.col(edge).is_not_null()).select(
                _KEY, a=a, dv=(a - b) * coefficient * sign, ds=pl.lit(coefficient * sign),
                **{w: pl.col(w) for w in weights}))
    last = (max(grid) - origin).total_seconds()
    # a total order (rows tied on every column are equal): the same sums, bit for bit
    order = [_KEY, "a", "dv", "ds", *weights]
    running = _running_sums(_sorted(pl.concat(events).filter(pl.col("a") <= last).collect(), order), weights)
    times = pl.DataFrame({"timestamp": sorted(grid)}).with_columns(
        pl.col("timestamp").cast(pl.Datetime("us")),
        t=(pl.col("timestamp").cast(pl.Datetime("us")) - pl.lit(origin)).dt.total_microseconds() / 1e6)
    # every key with every time in (key, time) order: built so, not crossed and sorted
    cell = np.arange(codes.height * times.height)
    per_key = max(times.height, 1)
    cells = pl.concat([codes.select(_KEY)[cell // per_key], times[cell % per_key]], how="horizontal").lazy()
    # both sides sorted by (key, time) above, so sorted by time within each key
    joined = cells.join_asof(running.lazy(), left_on="t", right_on="a", by=_KEY, strategy="backward",
                             check_sortedness=False)
    means = joined.select(_KEY, "timestamp", *[
        ((pl.col(f"{w}__v") + pl.col("t") * pl.col(f"{w}__s") - pl.col(f"{w}__sa")) / h).fill_null(0.0).alias(w)
        for w in weights]).with_columns(
        pl.when(pl.col(w).abs() < RESIDUE * pl.col(w).abs().max().over(_KEY)).then(0.0).otherwise(pl.col(w)).alias(w)
        for w in weights).sort([_KEY, "timestamp"]).collect()
    labels = codes.select(keys).select(pl.all().gather(means.get_column(_KEY)))
    return pl.concat([labels, means.drop(_KEY)], how="horizontal")


def _sorted(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``frame`` sorted by the ``by`` columns (numbers; ties by the next column). numpy's lexsort
    took about half the CPU of polars' multi-column sort on a large site's events (2.3 M rows,
    nine columns); polars sorts where a column has nulls (numpy would put them last, polars first)."""
    if not frame.height or any(frame.get_column(name).null_count() for name in by):
        return frame.sort(by, maintain_order=True)
    return frame[np.lexsort([frame.get_column(name).to_numpy() for name in reversed(by)])]


def _running_sums(events: pl.DataFrame, weights: Sequence[str]) -> pl.DataFrame:
    """Per key of ``events`` (sorted by key, then time): the three running sums of each weight at
    each event time, on the last row of the events at that time (which holds all of them).

    One query per key's slice instead of window expressions over the key: the keys are few (node
    types) and the slices contiguous, and the sums are added in the same order (measured: half
    the CPU of ``cum_sum().over(key)`` on 2.3 M events of 9 keys).
    """
    sums = [expr for w in weights for expr in (
        (pl.col(w) * pl.col("dv")).cum_sum().alias(f"{w}__v"),
        (pl.col(w) * pl.col("ds")).cum_sum().alias(f"{w}__s"),
        (pl.col(w) * pl.col("ds") * pl.col("a")).cum_sum().alias(f"{w}__sa"))]
    runs = events.select(pl.col(_KEY).rle()).unnest(_KEY)
    parts = [events.slice(at, size).lazy().select(_KEY, "a", *sums)
             .filter(pl.col("a").shift(-1).ne_missing(pl.col("a")))
             for at, size in zip((runs["len"].cum_sum() - runs["len"]).to_list(), runs["len"].to_list())]
    if not parts:
        return events.lazy().select(_KEY, "a", *sums).collect()
    return pl.concat(pl.collect_all(parts))
