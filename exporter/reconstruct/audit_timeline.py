"""The timeline half of the audit: the timeline's integral against the counted span-hours.

Per (node_type, level-series, resource) the span-hours inside the window must equal the
timeline's Σ value × step, the level-series being recovered from the exported leaves by the
inverse of the leaf table (exporter.reconstruct.leaves) — so the check is independent of how the
timeline was built. Also the negative leaves (a data anomaly, counted). Every float sum is
order-free, as in exporter.reconstruct.audit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from exporter.engine.intervals import overlap_seconds
from exporter.engine.fixed_point import exact_sums
from exporter.engine.resample import grid_end
from exporter.engine.sweepline import EXACT, exact_sum, order_free_sum
from exporter.errors import InvariantViolation
from exporter.columns import POOL_UNKNOWN
from exporter.reconstruct import pools
from exporter.reconstruct.leaves import LEAVES, RESOURCES, SERIES, leaf_column, series_name, series_weights
from exporter.reconstruct.timeline import GROUP, SpanInput, TimelineGrid, series_spans, series_totals, unexported_hours

Timeline = pl.DataFrame | TimelineGrid  # the long timeline, or its values per series (the same numbers)
NEGATIVE_TOLERANCE = 1e-9  # relative to the largest |value| of the (site, node_type, resource)


def timeline_accounting(spans: pl.DataFrame, grid: TimelineGrid, *, start: dt.datetime, end: dt.datetime,
                        step: dt.timedelta, snapshot_time: dt.datetime, counted: pl.DataFrame | None = None) -> dict:
    """The timeline part of the audit: window, size, negative leaves and, per (node_type,
    level-series, resource), counted span-hours in the window vs the timeline's integral
    (hours_conservation: leaves recombined by the inverse leaf table). Every figure is summed
    per series of the grid (row for row the values the long timeline holds; a test checks
    them against the long timeline's). ``spans``: the ones ``grid`` was made of; their levels are
    not checked again. ``counted``: :func:`window_span_hours` of them, if the caller made it already."""
    leaf_sums = _grid_leaf_sums(grid)  # summed once: the conservation's and the node-hours per pool
    if counted is None:
        counted = window_span_hours(spans, start=start, end=end, step=step, snapshot_time=snapshot_time)
    conservation = _conservation(counted, _series_hours(leaf_sums, step=step))
    by_pool, unknown = _grid_node_sums(grid, leaf_sums)
    return {
        "start": start.isoformat(), "end": end.isoformat(), "step_seconds": int(step.total_seconds()),
        "rows": grid.rows, "negative_leaves": grid_negative_leaves(grid),
        # occupied/stopped node-hours inside maintenance leases: in the maintenance leaf, not active/idle
        "node_hours_inside_maintenance": unexported_hours(spans, start=start, end=end, open_end=snapshot_time),
        "pools": pools.node_hours_summary(by_pool, unknown, step=step),
        "conservation": conservation.drop("difference").to_dicts(),
    }


def window_span_hours(spans: pl.DataFrame, *, start: dt.datetime, end: dt.datetime, step: dt.timedelta,
                      snapshot_time: dt.datetime) -> pl.DataFrame:
    """The spans' half of :func:`timeline_accounting`'s conservation: :func:`hours_by_level` over the
    grid's window, of spans that passed series_spans' checks (a small frame; its transients are
    ~100-150 MB on 500 x 10, so the pipeline makes it apart from the peaks of the lens and the writes)."""
    return hours_by_level(spans, start=start, end=grid_end(start=start, end=end, step=step),
                          open_end=snapshot_time, check=False)


def check_timeline_hours(conservation: list[dict]) -> None:
    """Raise InvariantViolation unless the timeline's integral equals the span-hours per
    (node_type, level-series, resource) (rule and tolerance: check_hours_conserved)."""
    frame = pl.DataFrame(conservation, infer_schema_length=None)
    if frame.height:
        check_hours_conserved(frame.with_columns(difference=pl.col("timeline_hours") - pl.col("span_hours")))


def _series_as_levels(
    frame: pl.DataFrame, value: str, *, index: Sequence[str] = tuple(GROUP)
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
    spans: SpanInput, *, start: datetime, end: datetime, open_end: datetime, check: bool = True
) -> pl.DataFrame:
    """Counted span-hours in the window [start, end), per level-series, in base units.

    Output: ``site, node_type, level, booking, resource, hours`` (Σ resource × hours of each
    span clipped to the window; null end closed at ``open_end``), for every (site, node_type) in
    the spans × every level-series × resource. ``check=False``: the spans passed series_spans'
    checks already.
    """
    seconds = overlap_seconds(start, end, open_end=open_end)
    totals = series_totals(series_spans(spans, check=check), seconds / 3600.0)
    long = totals.unpivot(
        index=[*GROUP, "series"], on=list(RESOURCES), variable_name="resource", value_name="hours"
    )
    return _series_as_levels(long, "hours")


def timeline_hours_by_level(timeline: Timeline, *, step: timedelta) -> pl.DataFrame:
    """The timeline's integral (Σ value × step, in hours) per level-series, from its leaves.

    Level-series are recovered from the leaves by the inverse of the leaf table, so this checks
    what the timeline says about each level independently of how it was built. Output columns
    as :func:`hours_by_level`.
    """
    leaf_sums = _grid_leaf_sums(timeline) if isinstance(timeline, TimelineGrid) else _long_leaf_sums(timeline)
    return _series_hours(leaf_sums, step=step)


def _series_hours(leaf_sums: pl.DataFrame, *, step: timedelta) -> pl.DataFrame:
    """:func:`timeline_hours_by_level` from the exact sums of the leaves (:func:`_long_leaf_sums`)."""
    inverse = pl.DataFrame(
        [
            {"series": series_name(*s), "pool": pool, "state": state, "weight": float(w)}
            for s, weights in series_weights().items()
            for (pool, state), w in weights.items()
        ]
    )
    step_hours = step / timedelta(hours=1)
    # Order-free sums keep audit.json byte-identical between runs of the parallel engine.
    series_hours = (
        leaf_sums.with_columns(pl.col("value").cast(pl.Float64)).join(inverse, on=["pool", "state"])
        .group_by(*GROUP, "series", "resource")
        .agg(order_free_sum(pl.col("value") * pl.col("weight")).mul(step_hours).alias("hours"))
    )
    return _series_as_levels(series_hours, "hours")


def _long_leaf_sums(timeline: pl.DataFrame) -> pl.DataFrame:
    """``site, node_type, pool, state, resource`` (text) and the exact sum ``value`` of a long timeline."""
    return (
        timeline.lazy()
        .group_by(*GROUP, "pool", "state", "resource")
        .agg(exact_sum(pl.col("value")))
        .collect(engine="streaming")
        # as text: spans label them so, and a timeline read from an older file has text labels
        .with_columns(pl.col(*GROUP, "pool", "state", "resource").cast(pl.String))
    )


def _grid_leaf_sums(grid: TimelineGrid) -> pl.DataFrame:
    """:func:`_long_leaf_sums` of the grid's long timeline, summed per leaf column and group (the
    same terms, and fixed-point sums do not depend on the order)."""
    if grid.times.len() == 0:  # groups but no rows: no leaf sums, as the long timeline has none
        return _long_leaf_sums(grid.long())
    columns = list(grid.leaves.columns)
    sums = _exact_per_group(grid, columns)
    sums = pl.concat([grid.groups.select(pl.col(GROUP).cast(pl.String)), sums], how="horizontal")
    labels = pl.DataFrame([name.split("|") for name in columns], schema=["pool", "state", "resource"], orient="row")
    return (sums.unpivot(index=GROUP, on=columns, variable_name="leaf", value_name="value")
            .join(labels.with_columns(leaf=pl.Series(columns)), on="leaf").drop("leaf"))


def _exact_per_group(grid: TimelineGrid, columns: list[str]) -> pl.DataFrame:
    """``exact_sum`` of each of ``columns`` per group of ``grid`` (one row per group), added in numpy
    (exporter.engine.fixed_point: the same sums at half the CPU), else by polars."""
    per_group = [exact_sums([block.get_column(name).to_numpy() for name in columns]) for block in grid.group_blocks()]
    if per_group and all(sums is not None for sums in per_group):
        return pl.DataFrame([sums.to_list() for sums in per_group], schema=dict.fromkeys(columns, EXACT), orient="row")
    return _per_group(grid, [exact_sum(pl.col(name)) for name in columns])


def _per_group(grid: TimelineGrid, expressions: list[pl.Expr]) -> pl.DataFrame:
    """One row per group of ``grid`` (in ``groups``' order): the aggregations ``expressions``
    over the group's rows, a slice of one chunk (no group-by, no copy)."""
    rows = [block.select(expressions) for block in grid.group_blocks()]
    return pl.concat(rows) if rows else grid.leaves.select(expressions).clear()


def _grid_node_sums(grid: TimelineGrid, leaf_sums: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exact sums of the node leaves: ``pool, value`` per leaf column and group (from the grid's
    ``leaf_sums``, :func:`_grid_leaf_sums`; a zero row per pool, so every pool is there) and, of
    the unknown pool, ``year, value`` per year (the input of exporter.reconstruct.pools.node_hours_summary)."""
    nodes = {pool: [leaf_column(pool, state, "nodes") for p, state in LEAVES if p == pool] for pool, _ in LEAVES}
    zeros = pl.DataFrame({"pool": list(nodes), "value": [0] * len(nodes)},
                         schema={"pool": pl.String, "value": leaf_sums.schema["value"]})
    by_pool = pl.concat([zeros, leaf_sums.filter(pl.col("resource") == "nodes").select("pool", "value")])
    unknown = (grid.leaves.select(nodes[POOL_UNKNOWN]).with_columns(year=grid.row_times().dt.year())
               .group_by("year").agg(exact_sum(pl.col(name)) for name in nodes[POOL_UNKNOWN])
               .unpivot(index="year", value_name="value").drop("variable"))
    return by_pool, unknown


def grid_negative_leaves(grid: TimelineGrid, *, tolerance: float = NEGATIVE_TOLERANCE) -> int:
    """How many rows :func:`negative_leaves` finds in the grid's long timeline."""
    lowest = grid.leaves.select(pl.all().min()).row(0, named=True) if grid.leaves.height else {}
    negative = [name for name, value in lowest.items() if value is not None and value < 0]
    if not negative:  # the usual case: nothing negative, no limits to compute
        return 0
    # Limits only for the resources of a column with a negative value (3,036 values in 2 of 45
    # columns on 500 x 10), each group's from its own rows
    resources = {name.rsplit("|", 1)[1] for name in negative}
    of_resource = {resource: [name for name in grid.leaves.columns if name.endswith(f"|{resource}")]
                   for resource in RESOURCES if resource in resources}

    # per (site, node_type) and resource: below this a value is negative beyond round-off
    limits = {resource: -tolerance * pl.max_horizontal(pl.max_horizontal(pl.col(name).abs().max() for name in names),
                                                       1.0) for resource, names in of_resource.items()}
    below_limit = [((pl.col(name) < 0) & (pl.col(name) < limits[name.rsplit("|", 1)[1]])).sum() for name in negative]
    counts = _per_group(grid, below_limit)
    return int(counts.select(pl.sum_horizontal(pl.all()).sum()).item()) if counts.height else 0


def hours_conservation(
    spans: SpanInput,
    timeline: Timeline,
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
    counted = hours_by_level(spans, start=start, end=grid_end(start=start, end=end, step=step), open_end=open_end)
    return _conservation(counted, timeline_hours_by_level(timeline, step=step))


def _conservation(counted: pl.DataFrame, integral: pl.DataFrame) -> pl.DataFrame:
    """:func:`hours_conservation` from :func:`hours_by_level` and :func:`timeline_hours_by_level`."""
    keys = [*GROUP, "level", "booking", "resource"]
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


def negative_leaves(timeline: pl.DataFrame, *, tolerance: float = NEGATIVE_TOLERANCE) -> pl.DataFrame:
    """Timeline rows whose leaf is negative (a data anomaly), ignoring float round-off.

    A value counts as negative below −tolerance × max(1, peak), peak being the largest |value|
    of the same (site, node_type, resource). Output: the offending timeline rows.
    """
    group = [*GROUP, "resource"]
    negative = timeline.filter(pl.col("value") < 0)
    if negative.height == 0:
        return negative
    peaks = (
        timeline.lazy()
        .join(negative.lazy().select(group).unique(), on=group, how="semi", nulls_equal=True)
        .group_by(group)
        .agg(pl.col("value").abs().max().alias("_peak"))
        .collect(engine="streaming")
    )
    return (
        negative.join(peaks, on=group, how="left", nulls_equal=True)
        .filter(pl.col("value") < -tolerance * pl.max_horizontal(pl.col("_peak"), 1.0))
        .drop("_peak")
    )
