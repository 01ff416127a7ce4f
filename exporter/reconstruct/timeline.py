"""Canonical spans -> exported timeline, instantaneous levels and counters.

Spans (exporter.columns.SPAN_SCHEMA) are summed per level-series (level, booking: see
exporter.reconstruct.leaves), resampled time-weighted onto a regular grid (exporter.engine.resample) and combined
into the mutually exclusive (pool, state) leaves by the leaf table in exporter.reconstruct.leaves.
Quantities are converted to base units with TIMELINE_RESOURCES factors. Intervals are
``[start, end)``; a null end is closed at ``open_end`` (timeline) or runs through ``at``
(instantaneous values and counters). A span of a level outside LEVELS, or whose booking fits
no level-series, raises TimelineError. Negative leaves (data anomalies) are kept.
Functions here collect and return eager DataFrames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from exporter.errors import ConfigError, TimelineError
from exporter.heap import trim_heap
from exporter.engine.intervals import overlap_seconds
from exporter.engine.sweepline import order_free_sum, signed_changes, sums_by_sorted_key
from exporter.engine.resample import DenseGrid, dense_grid_from_deltas, grid_size
from exporter.columns import LEVELS, RECORD_LEVELS, TIMELINE_RESOURCES, TIMELINE_SCHEMA, UNKNOWN_NODE_TYPE
from exporter.reconstruct.leaves import (
    LEAVES, RESOURCES, SERIES, SERIES_NAMES, UNEXPORTED_SERIES, group_blocks, leaf_columns, long_leaves,
    long_timeline, leaf_column, leaf_weights, long_timeline_parts, series_name, wide_by_series,
)

GROUP = ["site", "node_type"]
# Measured: in-memory is faster for the dense window/join plans of the sweep; streaming
# aggregates a whole timeline with far less CPU and no extra memory.
_ENGINE = "in-memory"
_STREAMING = "streaming"

SpanInput = pl.DataFrame | pl.LazyFrame


def series_spans(spans: SpanInput, *, keep: Sequence[str] = (), check: bool = True) -> pl.LazyFrame:
    """Spans reduced to ``site, node_type, series, start, end`` + RESOURCES (base units), after
    the ``keep`` columns carried through unchanged (explain lists spans with their sources).

    Null node_type becomes ``unknown``; null quantities count as 0. Raises TimelineError for a
    null start, a level outside LEVELS or a (level, booking) that belongs to no level-series
    (``check=False``: spans checked already, e.g. the grid's read again by its audit).
    """
    frame = spans.lazy().filter(~pl.col("level").is_in(RECORD_LEVELS))  # records (conflicts) feed no series
    if check:
        _check_levels(frame)
    frame = frame.filter(~_unexported())
    whole_levels = [level for level, booking in SERIES if booking is None]
    series = (
        pl.when(pl.col("level").is_in(whole_levels))
        .then(pl.col("level"))
        .otherwise(pl.concat_str("level", pl.lit("."), "booking"))
    )
    reduced = ("site", "node_type", "start", "end")
    return frame.select(
        *(column for column in keep if column not in reduced),
        "site",
        pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE),
        series.alias("series"),
        "start",
        "end",
        *(
            (pl.col(column).cast(pl.Float64).fill_null(0.0) * factor).alias(name)
            for name, (column, factor) in TIMELINE_RESOURCES.items()
        ),
    )


def _unexported() -> pl.Expr:
    """Spans of a level-series that feeds no leaf (states.UNEXPORTED_SERIES)."""
    return pl.any_horizontal(
        [(pl.col("level") == level) & (pl.col("booking") == booking) for level, booking in UNEXPORTED_SERIES]
    ).fill_null(False)


def unexported_hours(spans: SpanInput, *, start: datetime, end: datetime, open_end: datetime) -> float:
    """Node-hours in [start, end) of spans that feed no leaf (e.g. instances in maintenance leases)."""
    frame = spans.lazy().filter(_unexported())
    seconds = overlap_seconds(start, end, open_end=open_end)
    hours = frame.select(order_free_sum(seconds * pl.col("nodes").cast(pl.Float64).fill_null(0.0)) / 3600.0)
    return float(hours.collect(engine=_ENGINE).item() or 0.0)


def _check_levels(spans: pl.LazyFrame) -> None:
    null_starts = spans.select(pl.col("start").null_count()).collect(engine=_ENGINE).item()
    if null_starts:
        raise TimelineError(f"{null_starts} span(s) have no start; they must be rejected upstream")
    combos = spans.select("level", "booking").unique().collect(engine=_ENGINE)
    unknown = sorted(str(v) for v in set(combos["level"].to_list()) - set(LEVELS))
    if unknown:
        raise TimelineError(f"spans have unknown level(s) {unknown}; expected one of {LEVELS}")
    whole_levels = {level for level, booking in SERIES if booking is None}
    misfits = sorted(
        {
            f"{level}/{booking}"
            for level, booking in combos.rows()
            if level not in whole_levels and series_name(level, booking) not in SERIES_NAMES
            and (level, booking) not in UNEXPORTED_SERIES
        }
    )
    if misfits:
        raise TimelineError(f"spans have a booking that fits no level-series: {misfits}")


def _anchor_rows(series: pl.LazyFrame, **extra: pl.Expr) -> pl.LazyFrame:
    """A zero row (plus ``extra`` columns) per (site, node_type) in ``series`` × level-series."""
    return (
        series.select(GROUP)
        .unique()
        .join(pl.LazyFrame({"series": SERIES_NAMES}), how="cross")
        .select(*GROUP, "series", **extra, **{r: pl.lit(0.0) for r in RESOURCES})
    )


def _coded_series_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> tuple[pl.DataFrame, DenseGrid]:
    """(key table, grid): key table ``key_id, site, node_type, series`` sorted by its labels;
    grid: the cell means of every key_id in key_id order (exporter.engine.resample.DenseGrid)."""
    series = series_spans(spans)
    keys = [*GROUP, "series"]
    anchors = _anchor_rows(series, timestamp=pl.lit(start, dtype=pl.Datetime("us")))
    # Integer key codes keep the sweep's group-bys and joins cheap.
    key_table = (
        anchors.select(keys).unique().sort(keys, nulls_last=True).with_row_index("key_id")
    ).collect(engine=_ENGINE)
    # Row order decides the order floats are added in: keep the spans' (deterministic) order.
    coded = series.join(key_table.lazy(), on=keys, nulls_equal=True, maintain_order="left").drop(keys)
    deltas = signed_changes(
        coded, keys=["key_id"], values=RESOURCES, open_end=open_end, time="timestamp"
    )
    zeros = anchors.join(key_table.lazy(), on=keys, nulls_equal=True).select(
        "key_id", "timestamp", *RESOURCES
    )
    grid = dense_grid_from_deltas(
        pl.concat([deltas, zeros]),
        keys=["key_id"], values=RESOURCES, start=start, end=end, step=step, time="timestamp",
    )
    return key_table, grid


def _group_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> TimelineGrid:
    """The :class:`TimelineGrid` of the spans, from the dense grid's key blocks.

    A key's n cells are one block of the dense grid (key_id × n ..) and a group's level-series
    are consecutive keys (the key table is sorted by group first), so each group's leaves are
    computed from zero-copy slices of its keys' means, made one group at a time (the means of
    every key at once were 285 MB of fresh pages on 500 x 10), and the leaf columns keep one
    chunk per group: no gather and no copy of the level-series values.
    """
    key_table, grid = _coded_series_grid(spans, start=start, end=end, step=step, open_end=open_end)
    groups = key_table.filter(pl.col("series") == SERIES_NAMES[0]).select(GROUP)  # (site, node_type) order
    n, per = grid.cells, len(SERIES_NAMES)
    blocks = {name: key_table.filter(pl.col("series") == name).get_column("key_id").to_list() for name in SERIES_NAMES}
    per_group = []
    for group, means in zip(range(groups.height), grid.blocks(per)):  # keys group × per .. (group + 1) × per − 1
        per_group.append(_owned(leaf_columns(pl.DataFrame([
            means.get_column(r).slice((blocks[name][group] - group * per) * n, n).alias(f"{name}|{r}")
            for name in SERIES_NAMES for r in RESOURCES]))))
    empty = pl.DataFrame(schema={f"{name}|{r}": pl.Float64 for name in SERIES_NAMES for r in RESOURCES})
    leaves = pl.concat(per_group, rechunk=False) if per_group else leaf_columns(empty)
    return TimelineGrid(groups=groups, times=grid.times, leaves=leaves)


# Leaves of one level-series (sign +1): polars gives back the series itself, a slice of its group's
# means, which would keep all of them alive (+150-190 MB in the lens stage on 500 x 10).
_ONE_TERM = tuple(leaf_column(pool, state, resource) for (pool, state), terms in leaf_weights().items()
                  if len(terms) == 1 for resource in RESOURCES)


def _owned(leaves: pl.DataFrame) -> pl.DataFrame:
    """``leaves`` with its one-term columns copied (the same bits) out of the dense grid."""
    return leaves.with_columns(pl.Series(name, leaves.get_column(name).to_numpy().copy()) for name in _ONE_TERM)


# Refused before the grid is built: about 60 bytes per timeline row at peak (the 500-host
# ten-year benchmark: 31.6 M rows in 1.9 GB), so about 6 GB; --step 1s over years would be TBs.
MAX_TIMELINE_ROWS = 100_000_000


def check_timeline_size(spans: SpanInput, *, start: datetime, end: datetime, step: timedelta) -> int:
    """The timeline's row count, estimated from the window and the spans' (site, node_type)
    groups without building anything; ConfigError naming it and the limit when too large."""
    steps = grid_size(start=start, end=end, step=step)
    groups = max(1, spans.lazy().select(GROUP).unique().select(pl.len()).collect().item())
    per_group = len(LEAVES) * len(RESOURCES)
    rows = steps * groups * per_group
    if rows > MAX_TIMELINE_ROWS:
        raise ConfigError(f"the timeline would have {rows:,} rows ({steps:,} steps of {step} x {groups} node "
                          f"type(s) x {per_group} leaf values), more than the limit of {MAX_TIMELINE_ROWS:,}; "
                          "use a larger --step or a shorter --from/--to window")
    return rows


@dataclass(frozen=True)
class TimelineGrid:
    """The timeline per (site, node_type) before it is made long: ``groups`` (site, node_type,
    sorted), ``times`` (the n grid times) and ``leaves``, one column per (pool, state, resource)
    leaf (exporter.reconstruct.leaves.LEAF_COLUMNS) with one block of n rows per group in
    ``groups``' order (row g × n + cell). Consumers that want sums per series (the audit) read it
    instead of the long frame, 45 times as many rows; the writer interleaves it part by part."""

    groups: pl.DataFrame
    times: pl.Series
    leaves: pl.DataFrame

    def long(self) -> pl.DataFrame:
        """The exported timeline (:func:`timeline_from_spans`)."""
        return long_timeline(self.groups, self.times, self.leaves)

    def long_parts(self) -> Iterator[pl.DataFrame]:
        """The exported timeline in consecutive parts, each made when it is asked for: a writer
        that takes one at a time never holds the whole long frame."""
        return long_timeline_parts(self.groups, self.times, self.leaves)

    def group_blocks(self) -> list[pl.DataFrame]:
        """The rows of ``leaves`` of each group, in ``groups``' order."""
        return group_blocks(self.leaves, self.groups.height, self.times.len())

    def row_times(self) -> pl.Series:
        """The grid time of every row of ``leaves``."""
        n = max(self.times.len(), 1)
        return self.times.gather(pl.int_range(0, self.leaves.height, dtype=pl.Int64, eager=True) % n)

    @property
    def rows(self) -> int:
        """Rows of the long timeline."""
        return self.leaves.height * self.leaves.width


def timeline_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> TimelineGrid:
    """The values of :func:`timeline_from_spans` as a :class:`TimelineGrid`."""
    grid = _group_grid(spans, start=start, end=end, step=step, open_end=open_end)
    trim_heap()  # the freed blocks of the dense grid's means, once all of them are gone
    return grid


def timeline_from_spans(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> pl.DataFrame:
    """The exported timeline: exactly TIMELINE_SCHEMA, sorted by (site, timestamp, node_type,
    pool, state, resource) as docs/timeline.md says.

    One row per (site, timestamp, node_type, pool, state, resource) for grid points in
    [start, end) and every (site, node_type) in the spans; value = exact mean of the leaf over
    [timestamp, timestamp + step) in base units (0 where nothing). Σ over (pool, state) = total.
    """
    return timeline_grid(spans, start=start, end=end, step=step, open_end=open_end).long()


def series_totals(series: pl.LazyFrame, weight: pl.Expr) -> pl.DataFrame:
    """Σ resource × ``weight`` per (site, node_type, series), complete, sorted."""
    weighted = series.select(*GROUP, "series", *(pl.col(r) * weight for r in RESOURCES))
    anchors = _anchor_rows(series)
    # sums_by_sorted_key adds each key's rows in order: bit-identical between runs
    return sums_by_sorted_key(
        pl.concat([weighted, anchors]), by=[*GROUP, "series"], values=RESOURCES, few_keys=True
    ).collect(engine=_ENGINE)


def levels_at(spans: SpanInput, at: datetime) -> pl.DataFrame:
    """Instantaneous leaves at ``at`` (spans with start <= at < end; null end = open).

    TIMELINE_SCHEMA with timestamp = ``at``; same key set as the timeline (every
    (site, node_type) in the spans × every leaf × resource).
    """
    series = series_spans(spans)
    live = (pl.col("start") <= at) & (pl.col("end").is_null() | (pl.col("end") > at))
    wide = wide_by_series(series_totals(series, live.cast(pl.Float64)), GROUP)
    return (
        long_leaves(wide, GROUP)
        .with_columns(timestamp=pl.lit(at, dtype=pl.Datetime("us")))
        .select(pl.col(name).cast(dtype) for name, dtype in TIMELINE_SCHEMA.items())
    )


def counters_until(spans: SpanInput, *, origin: datetime, at: datetime) -> pl.DataFrame:
    """∫ leaf(t) dt over [origin, at) in resource-seconds (base units), per leaf.

    Output: ``site, node_type, pool, state, resource, value``, same key set as the timeline.
    Open spans run through ``at``. For a grid-aligned ``at`` this equals the cumulative
    Σ timeline value × step over grid points in [origin, at).
    """
    series = series_spans(spans)
    seconds = overlap_seconds(origin, at, open_end=at)
    wide = wide_by_series(series_totals(series, seconds), GROUP)
    return long_leaves(wide, GROUP).select(
        *(pl.col(name).cast(TIMELINE_SCHEMA[name]) for name in ("site", "node_type", "pool", "state", "resource")),
        "value",
    )


