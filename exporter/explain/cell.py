"""Which spans make a number, and how much each one adds: the timeline's own arithmetic per span.

A timeline value is the mean over its cell [t0, t1) of Σ sign × level-series (the selection's
formula); a level-series is Σ of its spans' quantities. So a span adds
``quantity × (seconds of the cell it covers / cell seconds) × sign``, and these contributions
add up to the value. The reduction of spans to level-series and base units is the timeline's
(``exporter.reconstruct.timeline.series_spans``), so this cannot drift from what was exported.

An instant (the live gauge) is the window [at, at + 1 µs): a span covers it wholly or not at all,
exactly the ``start <= at < end`` rule of ``exporter.reconstruct.timeline.levels_at``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from exporter.explain.formula import Formula
from exporter.engine.intervals import closed_end
from exporter.engine.sweepline import signed_changes
from exporter.reconstruct.timeline import series_spans

INSTANT = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """[start, end) of a cell (or an instant); null span ends are closed at ``open_end``
    (None: still open, i.e. running through the window)."""

    start: dt.datetime
    end: dt.datetime
    open_end: dt.datetime | None

    @property
    def micros(self) -> int:
        return (self.end - self.start) // INSTANT


def instant(at: dt.datetime) -> Window:
    return Window(at, at + INSTANT, None)


def overlapping(spans: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """Spans that can overlap the window: a predicate parquet scans push down."""
    starts_before = pl.col("start") < window.end
    ends_after = pl.col("end").is_null() | (pl.col("end") > window.start)
    return spans.filter(starts_before & ends_after)


def covered_fraction(window: Window) -> pl.Expr:
    """The share of the window a span (start, end) covers."""
    lo = pl.max_horizontal(pl.col("start"), pl.lit(window.start, dtype=pl.Datetime("us")))
    hi = pl.min_horizontal(closed_end("end", window.open_end), pl.lit(window.end, dtype=pl.Datetime("us")))
    micros = pl.max_horizontal((hi - lo).dt.total_microseconds(), 0)
    return micros.cast(pl.Float64) / window.micros


def contributions(spans: pl.DataFrame, formula: Formula, *, resource: str, window: Window,
                  keep: list[str]) -> pl.DataFrame:
    """One row per span of a term of ``formula`` that covers part of ``window``: ``keep`` columns +
    series, quantity (base units, the timeline's reduction), fraction, sign, contribution."""
    signs = pl.col("series").replace_strict(formula.coefficients, default=0, return_dtype=pl.Int64)
    reduced = series_spans(spans, keep=keep).collect()
    return (reduced.select(*keep, "series", pl.col(resource).alias("quantity"),
                           covered_fraction(window).alias("fraction"), signs.alias("sign"))
            .filter((pl.col("sign") != 0) & (pl.col("fraction") > 0))
            .with_columns(contribution=pl.col("quantity") * pl.col("fraction") * pl.col("sign")))


def ledger_deltas(rows: pl.DataFrame, window: Window, *, keep: list[str]) -> pl.DataFrame:
    """The ± changes of the contributing spans that fall inside the window, in time order, with the
    share of the cell mean each one moves (sign × delta × rest of the cell after it)."""
    changes = signed_changes(rows.lazy(), keys=[*keep, "series", "sign"], values=["quantity"],
                             open_end=window.open_end or dt.datetime.max, start="start", end="end",
                             time="time").collect()
    inside = changes.filter((pl.col("time") >= window.start) & (pl.col("time") < window.end))
    rest = (pl.lit(window.end, dtype=pl.Datetime("us")) - pl.col("time")).dt.total_microseconds()
    return (inside.rename({"quantity": "delta"})
            .with_columns(effect=pl.col("delta") * pl.col("sign") * rest.cast(pl.Float64) / window.micros)
            .sort("time", "series", *keep, nulls_last=True))
