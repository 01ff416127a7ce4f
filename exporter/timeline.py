"""Canonical spans -> exported timeline, instantaneous levels and counters.

Spans (exporter.schema.SPAN_SCHEMA) are summed per level-series (level, booking: see
exporter.states), resampled time-weighted onto a regular grid (exporter.resample) and combined
into the mutually exclusive (pool, state) leaves by the leaf table in exporter.states.
Quantities are converted to base units with TIMELINE_RESOURCES factors. Intervals are
``[start, end)``; a null end is closed at ``open_end`` (timeline) or runs through ``at``
(instantaneous values and counters). A span of a level outside LEVELS, or whose booking fits
no level-series, raises TimelineError. Negative leaves (data anomalies) are kept.
Functions here collect and return eager DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from exporter.errors import InvariantViolation, TimelineError
from exporter.intervals import closed_end
from exporter.ledger import order_free_sum, signed_changes
from exporter.resample import grid_end, grid_means_from_deltas
from exporter.schema import LEVELS, TIMELINE_RESOURCES, TIMELINE_SCHEMA, UNKNOWN_NODE_TYPE
from exporter.states import LEAVES, SERIES, UNEXPORTED_SERIES, leaf_weights, series_name, series_weights

RESOURCES = tuple(TIMELINE_RESOURCES)
SERIES_NAMES = tuple(series_name(level, booking) for level, booking in SERIES)
_GROUP = ["site", "node_type"]
# (pool, state, resource) in the timeline's sort order
_LEAF_ROWS = tuple(sorted((pool, state, res) for pool, state in LEAVES for res in RESOURCES))
# Measured: in-memory is faster for the dense window/join plans of the sweep; streaming
# aggregates a whole timeline with far less CPU and no extra memory.
_ENGINE = "in-memory"
_STREAMING = "streaming"

SpanInput = pl.DataFrame | pl.LazyFrame


def series_spans(spans: SpanInput) -> pl.LazyFrame:
    """Spans reduced to ``site, node_type, series, start, end`` + RESOURCES (base units).

    Null node_type becomes ``unknown``; null quantities count as 0. Raises TimelineError for a
    null start, a level outside LEVELS or a (level, booking) that belongs to no level-series.
    """
    frame = spans.lazy()
    _check_levels(frame)
    frame = frame.filter(~_unexported())
    whole_levels = [level for level, booking in SERIES if booking is None]
    series = (
        pl.when(pl.col("level").is_in(whole_levels))
        .then(pl.col("level"))
        .otherwise(pl.concat_str("level", pl.lit("."), "booking"))
    )
    return frame.select(
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
    seconds = _overlap_seconds(start, end, open_end=open_end)
    hours = frame.select((seconds * pl.col("nodes").cast(pl.Float64).fill_null(0.0)).sum() / 3600.0)
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
        series.select(_GROUP)
        .unique()
        .join(pl.LazyFrame({"series": SERIES_NAMES}), how="cross")
        .select(*_GROUP, "series", **extra, **{r: pl.lit(0.0) for r in RESOURCES})
    )


def _coded_series_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(key table, grid): key table ``key_id, site, node_type, series`` sorted by its labels;
    grid ``key_id, timestamp`` + RESOURCES (cell means), complete, sorted by key_id, timestamp."""
    series = series_spans(spans)
    keys = [*_GROUP, "series"]
    anchors = _anchor_rows(series, timestamp=pl.lit(start, dtype=pl.Datetime("us")))
    # Integer key codes keep the sweep's group-bys and joins cheap.
    key_table = (
        anchors.select(keys).unique().sort(keys, nulls_last=True).with_row_index("key_id")
    ).collect(engine=_ENGINE)
    coded = series.join(key_table.lazy(), on=keys, nulls_equal=True).drop(keys)
    deltas = signed_changes(
        coded, keys=["key_id"], values=RESOURCES, open_end=open_end, time="timestamp"
    )
    zeros = anchors.join(key_table.lazy(), on=keys, nulls_equal=True).select(
        "key_id", "timestamp", *RESOURCES
    )
    grid = grid_means_from_deltas(
        pl.concat([deltas, zeros]),
        keys=["key_id"], values=RESOURCES, start=start, end=end, step=step, time="timestamp",
    ).collect(engine=_ENGINE)
    return key_table, grid


def _series_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> pl.DataFrame:
    """Cell means per (site, node_type, series, timestamp), complete, sorted in that order."""
    key_table, grid = _coded_series_grid(spans, start=start, end=end, step=step, open_end=open_end)
    labels = key_table.select(pl.all().exclude("key_id").gather(grid["key_id"]))
    return pl.concat([labels, grid.drop("key_id")], how="horizontal")


def _wide_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> pl.DataFrame:
    """``site, node_type, timestamp`` + one ``<series>|<resource>`` column per level-series and
    resource, sorted by site, timestamp, node_type.

    Built from the integer-coded grid: each level-series' rows are picked by key_id (the grid
    is sorted by key_id, so they come out in (site, node_type, timestamp) order) and no label
    column is repeated per grid row.
    """
    key_table, grid = _coded_series_grid(spans, start=start, end=end, step=step, open_end=open_end)
    ids = {name: key_table.filter(pl.col("series") == name).get_column("key_id") for name in SERIES_NAMES}
    first = grid.filter(pl.col("key_id").is_in(ids[SERIES_NAMES[0]].implode()))
    index = key_table.select(pl.col(_GROUP).gather(first["key_id"]))  # key_id = row of key_table
    columns = [
        grid.filter(pl.col("key_id").is_in(ids[name].implode())).select(
            pl.col(r).alias(f"{name}|{r}") for r in RESOURCES
        )
        for name in SERIES_NAMES
    ]
    return pl.concat([index, first.select("timestamp"), *columns], how="horizontal").sort(
        "site", "timestamp", "node_type"
    )


def level_grid(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> pl.DataFrame:
    """Time-weighted level-series on the grid, long format.

    Output: ``site, timestamp, node_type, level, booking, resource, value`` (base units; value
    = mean over [timestamp, timestamp + step)), one row per grid point for every
    (site, node_type) in the spans and every level-series.
    """
    grid = _series_grid(spans, start=start, end=end, step=step, open_end=open_end)
    long = grid.unpivot(
        index=[*_GROUP, "series", "timestamp"], on=list(RESOURCES),
        variable_name="resource", value_name="value",
    )
    return _series_as_levels(long, "value", index=["site", "timestamp", "node_type"])


def _wide_by_series(frame: pl.DataFrame, index: Sequence[str]) -> pl.DataFrame:
    """One column ``<series>|<resource>`` per level-series and resource, one row per index.

    ``frame`` must hold every series for every index value, in the same index order per series.
    """
    first = frame.filter(pl.col("series") == SERIES_NAMES[0]).select(index)
    columns = [
        frame.filter(pl.col("series") == name).select(
            pl.col(r).alias(f"{name}|{r}") for r in RESOURCES
        )
        for name in SERIES_NAMES
    ]
    return pl.concat([first, *columns], how="horizontal")


def _leaf_value(pool: str, state: str, resource: str) -> pl.Expr:
    terms = leaf_weights()[(pool, state)]
    return pl.sum_horizontal(
        sign * pl.col(f"{series_name(*s)}|{resource}") for s, sign in terms.items()
    )


def _long_values(piece: pl.DataFrame, shape: pl.DataFrame) -> pl.Series:
    """``value`` of the long rows ``shape`` (``row`` of ``piece``, ``leaf`` index) of a wide piece."""
    leaves = piece.select(_leaf_value(*leaf).alias(str(j)) for j, leaf in enumerate(_LEAF_ROWS))
    stacked = pl.concat(leaves.get_columns())  # leaf-major: leaf j, row r at j × rows + r
    return stacked.gather(shape["leaf"] * piece.height + shape["row"]).alias("value")


def _long_leaves(wide: pl.DataFrame, index: Sequence[str]) -> pl.DataFrame:
    """Leaves in long format: each wide row becomes one row per (pool, state, resource).

    Built in slices of wide rows; the slices share one copy of the repeating index and label
    columns, which keeps both time and memory down.
    """
    if wide.height == 0:
        labels = {"pool": pl.String, "state": pl.String, "resource": pl.String}
        return pl.DataFrame(schema={**wide.select(index).schema, **labels, "value": pl.Float64})
    m, chunk = len(_LEAF_ROWS), min(1 << 16, wide.height)
    position = pl.int_range(0, chunk * m, dtype=pl.get_index_type(), eager=True)
    pattern = pl.DataFrame({"row": position // m, "leaf": position % m})
    labels = pl.DataFrame(
        pl.Series(name, [leaf_row[i] for leaf_row in _LEAF_ROWS]).gather(pattern["leaf"])
        for i, name in enumerate(("pool", "state", "resource"))
    )
    parts = []
    for at in range(0, wide.height, chunk):
        rows = min(chunk, wide.height - at)
        piece, shape = wide.slice(at, rows), pattern.head(rows * m)
        keys = piece.select(pl.col(c).gather(shape["row"]) for c in index)
        value = _long_values(piece, shape).to_frame()
        parts.append(pl.concat([keys, labels.head(rows * m), value], how="horizontal"))
    return pl.concat(parts, how="vertical", rechunk=False)


def _leaf_label_pattern(site: str, node_types: pl.Series, rows: int) -> pl.DataFrame:
    """Label columns of ``rows`` wide rows cycling through ``node_types``, × every leaf row:
    ``site, node_type, pool, state, resource`` in long-timeline order."""
    m = len(_LEAF_ROWS)
    position = pl.int_range(0, rows * m, dtype=pl.get_index_type(), eager=True)
    leaf = position % m
    return pl.DataFrame(
        [
            pl.Series("site", [site], dtype=pl.String).gather(position * 0),
            node_types.gather((position // m) % node_types.len()).alias("node_type"),
            *(
                pl.Series(name, [leaf_row[i] for leaf_row in _LEAF_ROWS]).gather(leaf)
                for i, name in enumerate(("pool", "state", "resource"))
            ),
        ]
    )


def _site_long_leaves(wide: pl.DataFrame) -> list[pl.DataFrame]:
    """Long timeline parts of ONE site's wide grid (sorted by timestamp, node_type, complete).

    Every timestamp has the same node types, so the label columns repeat with a fixed period:
    all parts share slices of one label pattern and only timestamp and value are per row.
    """
    node_types = wide.filter(pl.col("timestamp") == wide["timestamp"][0]).get_column("node_type")
    k, m = node_types.len(), len(_LEAF_ROWS)
    tiled = node_types.gather(pl.int_range(0, wide.height, eager=True) % k)
    if wide.height % k or not (wide["node_type"] == tiled).all():
        raise TimelineError("timeline grid is not complete: node types differ between timestamps")
    chunk = max(1, (1 << 14) // k) * k
    pattern = _leaf_label_pattern(wide["site"][0], node_types, min(chunk, wide.height))
    position = pl.int_range(0, pattern.height, dtype=pl.get_index_type(), eager=True)
    shape = pl.DataFrame({"row": position // m, "leaf": position % m})
    parts = []
    for at in range(0, wide.height, chunk):
        rows = min(chunk, wide.height - at)
        piece, cut = wide.slice(at, rows), shape.head(rows * m)
        labels = pattern.head(rows * m)
        parts.append(pl.DataFrame([
            labels["site"], piece["timestamp"].gather(cut["row"]), labels["node_type"], labels["pool"],
            labels["state"], labels["resource"], _long_values(piece, cut),
        ]))
    return parts


def timeline_from_spans(
    spans: SpanInput, *, start: datetime, end: datetime, step: timedelta, open_end: datetime
) -> pl.DataFrame:
    """The exported timeline: exactly TIMELINE_SCHEMA, sorted by its keys + timestamp.

    One row per (site, timestamp, node_type, pool, state, resource) for grid points in
    [start, end) and every (site, node_type) in the spans; value = exact mean of the leaf over
    [timestamp, timestamp + step) in base units (0 where nothing). Σ over (pool, state) = total.
    """
    wide = _wide_grid(spans, start=start, end=end, step=step, open_end=open_end)
    if wide.height == 0:
        return _long_leaves(wide, ["site", "timestamp", "node_type"]).select(
            pl.col(name).cast(dtype) for name, dtype in TIMELINE_SCHEMA.items()
        )
    sites = wide.select(pl.col("site").rle()).unnest("site")  # wide is sorted by site first
    parts = [
        part
        for at, rows in zip(sites["len"].cum_sum() - sites["len"], sites["len"])
        for part in _site_long_leaves(wide.slice(at, rows))
    ]
    return pl.concat(parts, how="vertical", rechunk=False)


def _series_totals(series: pl.LazyFrame, weight: pl.Expr) -> pl.DataFrame:
    """Σ resource × ``weight`` per (site, node_type, series), complete, sorted."""
    weighted = series.select(*_GROUP, "series", *(pl.col(r) * weight for r in RESOURCES))
    anchors = _anchor_rows(series)
    return (
        pl.concat([weighted, anchors])
        .group_by(*_GROUP, "series")
        .agg(pl.col(r).sum() for r in RESOURCES)
        .sort(*_GROUP, "series")
        .collect(engine=_ENGINE)
    )


def levels_at(spans: SpanInput, at: datetime) -> pl.DataFrame:
    """Instantaneous leaves at ``at`` (spans with start <= at < end; null end = open).

    TIMELINE_SCHEMA with timestamp = ``at``; same key set as the timeline (every
    (site, node_type) in the spans × every leaf × resource).
    """
    series = series_spans(spans)
    live = (pl.col("start") <= at) & (pl.col("end").is_null() | (pl.col("end") > at))
    wide = _wide_by_series(_series_totals(series, live.cast(pl.Float64)), _GROUP)
    return (
        _long_leaves(wide, _GROUP)
        .with_columns(timestamp=pl.lit(at, dtype=pl.Datetime("us")))
        .select(pl.col(name).cast(dtype) for name, dtype in TIMELINE_SCHEMA.items())
    )


def _overlap_seconds(start: datetime, end: datetime, *, open_end: datetime) -> pl.Expr:
    """Seconds of each span's [start, end) inside the window [start, end) (open spans closed)."""
    lo = pl.max_horizontal(pl.col("start"), pl.lit(start, dtype=pl.Datetime("us")))
    hi = pl.min_horizontal(closed_end("end", open_end), pl.lit(end, dtype=pl.Datetime("us")))
    micros = (hi - lo).dt.total_microseconds().cast(pl.Float64)
    return pl.max_horizontal(micros, 0.0) / 1_000_000


def counters_until(spans: SpanInput, *, origin: datetime, at: datetime) -> pl.DataFrame:
    """∫ leaf(t) dt over [origin, at) in resource-seconds (base units), per leaf.

    Output: ``site, node_type, pool, state, resource, value``, same key set as the timeline.
    Open spans run through ``at``. For a grid-aligned ``at`` this equals the cumulative
    Σ timeline value × step over grid points in [origin, at).
    """
    series = series_spans(spans)
    seconds = _overlap_seconds(origin, at, open_end=at)
    wide = _wide_by_series(_series_totals(series, seconds), _GROUP)
    return _long_leaves(wide, _GROUP).select(
        "site", "node_type", "pool", "state", "resource", "value"
    )


def _series_as_levels(
    frame: pl.DataFrame, value: str, *, index: Sequence[str] = tuple(_GROUP)
) -> pl.DataFrame:
    """``index, series, resource, <value>`` -> ``index, level, booking, resource, <value>``."""
    level_of = {series_name(*s): s for s in SERIES}
    return (
        frame.with_columns(
            pl.col("series").replace_strict({k: v[0] for k, v in level_of.items()}).alias("level"),
            pl.col("series")
            .replace_strict({k: v[1] for k, v in level_of.items()}, return_dtype=pl.String)
            .alias("booking"),
        )
        .select(*index, "level", "booking", "resource", value)
        .sort(*index, "level", "booking", "resource", nulls_last=True)
    )


def hours_by_level(
    spans: SpanInput, *, start: datetime, end: datetime, open_end: datetime
) -> pl.DataFrame:
    """Counted span-hours in the window [start, end), per level-series, in base units.

    Output: ``site, node_type, level, booking, resource, hours`` (Σ resource × hours of each
    span clipped to the window; null end closed at ``open_end``), for every (site, node_type) in
    the spans × every level-series × resource.
    """
    seconds = _overlap_seconds(start, end, open_end=open_end)
    totals = _series_totals(series_spans(spans), seconds / 3600.0)
    long = totals.unpivot(
        index=[*_GROUP, "series"], on=list(RESOURCES), variable_name="resource", value_name="hours"
    )
    return _series_as_levels(long, "hours")


def timeline_hours_by_level(timeline: pl.DataFrame, *, step: timedelta) -> pl.DataFrame:
    """The timeline's integral (Σ value × step, in hours) per level-series, from its leaves.

    Level-series are recovered from the leaves by the inverse of the leaf table, so this checks
    what the timeline says about each level independently of how it was built. Output columns
    as :func:`hours_by_level`.
    """
    inverse = pl.DataFrame(
        [
            {"series": series_name(*s), "pool": pool, "state": state, "weight": float(w)}
            for s, weights in series_weights().items()
            for (pool, state), w in weights.items()
        ]
    )
    step_hours = step / timedelta(hours=1)
    # Order-free sums keep audit.json byte-identical between runs of the parallel engine.
    leaf_sums = (
        timeline.lazy()
        .group_by(*_GROUP, "pool", "state", "resource")
        .agg(order_free_sum(pl.col("value")))
        .collect(engine=_STREAMING)
    )
    series_hours = (
        leaf_sums.join(inverse, on=["pool", "state"])
        .group_by(*_GROUP, "series", "resource")
        .agg(order_free_sum(pl.col("value") * pl.col("weight")).mul(step_hours).alias("hours"))
    )
    return _series_as_levels(series_hours, "hours")


def hours_conservation(
    spans: SpanInput,
    timeline: pl.DataFrame,
    *,
    start: datetime,
    end: datetime,
    step: timedelta,
    open_end: datetime,
) -> pl.DataFrame:
    """Span-hours vs timeline integral per level-series over the grid's window.

    The window is [start, grid_end) (the last cell may reach past ``end``). Output:
    ``site, node_type, level, booking, resource, span_hours, timeline_hours, difference``.
    """
    window_end = grid_end(start=start, end=end, step=step)
    keys = [*_GROUP, "level", "booking", "resource"]
    counted = hours_by_level(spans, start=start, end=window_end, open_end=open_end)
    integral = timeline_hours_by_level(timeline, step=step)
    return (
        counted.rename({"hours": "span_hours"})
        .join(integral.rename({"hours": "timeline_hours"}), on=keys, how="full",
              coalesce=True, nulls_equal=True)
        .with_columns(pl.col("span_hours", "timeline_hours").fill_null(0.0))
        .with_columns(difference=pl.col("timeline_hours") - pl.col("span_hours"))
        .sort(keys, nulls_last=True)
    )


def check_hours_conserved(
    conservation: pl.DataFrame, *, rel_tol: float = 1e-9, abs_tol: float = 1e-6
) -> None:
    """Raise InvariantViolation if any timeline integral differs from its span-hours.

    Allowed difference: ``abs_tol`` + ``rel_tol`` × the largest hours of any level-series of
    the same (site, node_type, resource). ``conservation`` is :func:`hours_conservation`'s
    output; the error's ``details`` lists the bad rows.
    """
    # Leaves are differences of level-series, so round-off scales with the largest series of
    # the same (site, node_type, resource), not with the series being checked.
    scale = (
        pl.max_horizontal(pl.col("span_hours").abs(), pl.col("timeline_hours").abs())
        .max()
        .over("site", "node_type", "resource")
    )
    bad = conservation.filter(pl.col("difference").abs() > abs_tol + rel_tol * scale)
    if bad.height:
        first = bad.row(0, named=True)
        raise InvariantViolation(
            f"hours not conserved for {bad.height} level/resource series, e.g. "
            f"{first['site']}/{first['node_type']}/{first['level']}/{first['booking']}/"
            f"{first['resource']}: spans {first['span_hours']:.6g} h vs timeline "
            f"{first['timeline_hours']:.6g} h",
            details=bad.to_dicts(),
        )


def negative_leaves(timeline: pl.DataFrame, *, tolerance: float = 1e-9) -> pl.DataFrame:
    """Timeline rows whose leaf is negative (a data anomaly), ignoring float round-off.

    A value counts as negative below −tolerance × max(1, peak), peak being the largest |value|
    of the same (site, node_type, resource). Output: the offending timeline rows.
    """
    group = [*_GROUP, "resource"]
    negative = timeline.filter(pl.col("value") < 0)
    if negative.height == 0:
        return negative
    peaks = (
        timeline.lazy()
        .join(negative.lazy().select(group).unique(), on=group, how="semi", nulls_equal=True)
        .group_by(group)
        .agg(pl.col("value").abs().max().alias("_peak"))
        .collect(engine=_STREAMING)
    )
    return (
        negative.join(peaks, on=group, how="left", nulls_equal=True)
        .filter(pl.col("value") < -tolerance * pl.max_horizontal(pl.col("_peak"), 1.0))
        .drop("_peak")
    )
