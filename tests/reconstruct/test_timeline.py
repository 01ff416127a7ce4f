"""Spans -> exported leaves, instantaneous levels, counters and the hours invariant.

Leaf rule (exporter.reconstruct.leaves, docs/semantics.md): reservable pool: available = reservable −
committed − maintenance, maintenance, idle = committed − occupied[reservation], active =
occupied[reservation] − stopped[reservation], stopped; ondemand pool: available = ondemand −
occupied[ondemand], active, stopped; unknown pool: available = total − reservable − ondemand.
Leaves sum to total.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from exporter.errors import InvariantViolation, TimelineError
from exporter.columns import SPAN_SCHEMA, TIMELINE_SCHEMA, conform
from exporter.reconstruct.audit_timeline import check_hours_conserved, hours_conservation, negative_leaves
from exporter.reconstruct.timeline import counters_until, levels_at, timeline_from_spans

HOUR = timedelta(hours=1)
T0 = datetime(2020, 1, 1)
END = T0 + 4 * HOUR


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def span(level, start, end, *, booking=None, node_type="gpu", nodes=1.0, memory_mb=0.0):
    return dict(site="s", level=level, booking=booking, node_type=node_type, start=start,
                end=end, nodes=nodes, vcpus=0.0, memory_mb=memory_mb, disk_gb=0.0, gpus=0.0)


def frame(*rows) -> pl.DataFrame:
    return conform(pl.DataFrame(list(rows)), SPAN_SCHEMA)


# one host: exists all along, evidenced on-demand 00:00-00:30 (then no evidence until 01:00),
# reservable from 01:00, leased 01:30-03:00, instance 02:00-03:00
HOST = frame(
    span("total", at(0), None),
    span("ondemand", at(0), at(0.5)),
    span("reservable", at(1), None),
    span("committed", at(1.5), at(3)),
    span("occupied", at(2), at(3), booking="reservation"),
)


def nodes(timeline: pl.DataFrame, hour: float) -> dict[str, float]:
    rows = timeline.filter(pl.col("resource") == "nodes", pl.col("timestamp") == at(hour))
    return {f"{p}/{s}": v for p, s, v in rows.select("pool", "state", "value").rows() if v}


def test_leaves_follow_the_leaf_table_hour_by_hour():
    tl = timeline_from_spans(HOST, start=T0, end=END, step=HOUR, open_end=END)
    assert nodes(tl, 0) == {"ondemand/available": 0.5, "unknown/available": 0.5}
    assert nodes(tl, 1) == {"reservable/available": 0.5, "reservable/idle": 0.5}
    assert nodes(tl, 2) == {"reservable/active": 1.0}
    assert nodes(tl, 3) == {"reservable/available": 1.0}


def test_timeline_has_exact_schema_sorted_and_one_row_per_key():
    tl = timeline_from_spans(HOST, start=T0, end=END, step=HOUR, open_end=END)
    assert dict(tl.schema) == TIMELINE_SCHEMA
    keys = ["site", "timestamp", "node_type", "pool", "state", "resource"]
    assert tl.height == 4 * 9 * 5  # grid points × leaves × resources
    assert tl.select(keys).is_unique().all()
    assert tl.equals(tl.sort(keys))


def test_memory_is_reported_in_bytes():
    spans = frame(span("total", at(0), None, memory_mb=2.0))
    tl = timeline_from_spans(spans, start=T0, end=at(1), step=HOUR, open_end=END)
    got = tl.filter(resource="memory_bytes", pool="unknown", state="available")["value"]
    assert got.to_list() == [2.0 * 1024 * 1024]


def test_node_type_that_appears_only_outside_the_window_still_gets_zero_rows():
    spans = frame(span("total", at(0), None), span("total", at(10), at(11), node_type="cpu"))
    tl = timeline_from_spans(spans, start=T0, end=at(1), step=HOUR, open_end=END)
    assert tl.filter(node_type="cpu")["value"].to_list() == [0.0] * 45


def test_null_node_type_is_unknown():
    spans = frame(span("total", at(0), None, node_type=None))
    tl = timeline_from_spans(spans, start=T0, end=at(1), step=HOUR, open_end=END)
    assert tl["node_type"].unique().to_list() == ["unknown"]


def test_span_of_unknown_level_is_a_timeline_error():
    with pytest.raises(TimelineError, match="unknown level"):
        timeline_from_spans(frame(span("bogus", at(0), None)), start=T0, end=END, step=HOUR,
                            open_end=END)


def test_occupied_span_without_booking_is_a_timeline_error():
    with pytest.raises(TimelineError, match="occupied/None"):
        timeline_from_spans(frame(span("occupied", at(0), None)), start=T0, end=END, step=HOUR,
                            open_end=END)


def test_span_without_start_is_a_timeline_error():
    with pytest.raises(TimelineError, match="no start"):
        timeline_from_spans(frame(span("total", None, at(1))), start=T0, end=END, step=HOUR,
                            open_end=END)


def test_levels_at_counts_spans_with_start_at_or_before_and_end_after_the_instant():
    assert nodes(levels_at(HOST, at(2)), 2) == {"reservable/active": 1.0}
    # at 03:00 the lease and instance have ended (half-open)
    assert nodes(levels_at(HOST, at(3)), 3) == {"reservable/available": 1.0}


def test_levels_at_has_the_timelines_key_set():
    instant = levels_at(HOST, at(2))
    tl = timeline_from_spans(HOST, start=at(2), end=at(3), step=HOUR, open_end=END)
    assert dict(instant.schema) == TIMELINE_SCHEMA
    assert instant.drop("value").equals(tl.drop("value"))


def test_counters_until_integrates_leaves_in_resource_seconds():
    got = counters_until(HOST, origin=T0, at=END)
    seconds = {f"{p}/{s}": v for p, s, r, v in got.select("pool", "state", "resource", "value").rows()
               if r == "nodes" and v}
    assert seconds == {"ondemand/available": 1800.0, "unknown/available": 1800.0, "reservable/available": 5400.0,
                       "reservable/idle": 1800.0, "reservable/active": 3600.0}


def test_counters_until_grid_point_equals_cumulative_timeline():
    tl = timeline_from_spans(HOST, start=T0, end=END, step=HOUR, open_end=END)
    keys = ["site", "node_type", "pool", "state", "resource"]
    for k in range(5):
        expected = (
            tl.filter(pl.col("timestamp") < at(k)).group_by(keys).agg(pl.col("value").sum() * 3600)
        )
        got = counters_until(HOST, origin=T0, at=at(k)).join(expected, on=keys, how="left")
        assert (got["value"] - got["value_right"].fill_null(0.0)).abs().max() < 1e-9


def test_hours_are_conserved_and_a_tampered_timeline_is_caught():
    tl = timeline_from_spans(HOST, start=T0, end=END, step=HOUR, open_end=END)
    conservation = hours_conservation(HOST, tl, start=T0, end=END, step=HOUR, open_end=END)
    check_hours_conserved(conservation)
    total = conservation.filter(level="total", resource="nodes")
    assert total.select("span_hours", "timeline_hours").row(0) == (4.0, 4.0)
    tampered = tl.with_columns(
        pl.when((pl.col("state") == "idle") & (pl.col("resource") == "nodes"))
        .then(pl.col("value") + 1).otherwise(pl.col("value"))
    )
    bad = hours_conservation(HOST, tampered, start=T0, end=END, step=HOUR, open_end=END)
    with pytest.raises(InvariantViolation, match="not conserved"):
        check_hours_conserved(bad)


def test_negative_leaf_is_kept_and_reported():
    # an instance on a reservation with no lease: idle = committed − occupied = −1
    spans = frame(span("total", at(0), None), span("reservable", at(0), None),
                  span("occupied", at(0), at(1), booking="reservation"))
    tl = timeline_from_spans(spans, start=T0, end=at(2), step=HOUR, open_end=END)
    negative = negative_leaves(tl)
    assert negative.select("timestamp", "state", "resource", "value").rows() == [
        (at(0), "idle", "nodes", -1.0)
    ]
    assert tl.filter(state="idle", resource="nodes")["value"].to_list() == [-1.0, 0.0]


def test_open_span_counts_in_counters_up_to_the_instant_asked_about():
    spans = frame(span("total", at(0), None), span("ondemand", at(0), None))
    got = counters_until(spans, origin=T0, at=at(5)).filter(
        resource="nodes", pool="ondemand", state="available"
    )
    assert got["value"].to_list() == [5 * 3600.0]


def test_span_starting_after_the_instant_is_not_live():
    spans = frame(span("total", at(0), None), span("reservable", at(2), None))
    assert nodes(levels_at(spans, at(1)), 1) == {"unknown/available": 1.0}


def test_lazy_spans_give_the_same_timeline():
    eager = timeline_from_spans(HOST, start=T0, end=END, step=HOUR, open_end=END)
    lazy = timeline_from_spans(HOST.lazy(), start=T0, end=END, step=HOUR, open_end=END)
    assert lazy.equals(eager)


def test_timeline_is_bit_identical_between_runs_on_many_overlapping_spans():
    """Float sums depend on the order terms are added in; the parallel engine must not change it.

    Many spans share each cell, with fractional starts and values whose sums round, so any
    run-to-run change of summation order shows up in the last bits of some cells.
    """
    import random

    rng = random.Random(3)
    rows = []
    for i in range(150_000):
        begin = rng.uniform(0, 300)
        rows.append(span("occupied", at(begin), at(begin + rng.uniform(0.01, 40)), booking="reservation",
                         node_type=f"t{i % 3}", nodes=rng.uniform(0.1, 3.3), memory_mb=rng.uniform(1, 1e6)))
    spans = frame(span("total", at(0), None, node_type="t0"), *rows)
    runs = [timeline_from_spans(spans, start=T0, end=at(340), step=HOUR, open_end=at(340)) for _ in range(4)]
    for other in runs[1:]:
        assert other["value"].to_physical().equals(runs[0]["value"].to_physical())


def test_hours_conservation_accepts_a_timeline_with_text_labels():
    """A timeline.parquet written before labels became Enum/Categorical reads back as String."""
    timeline = timeline_from_spans(HOST, start=T0, end=END, step=HOUR, open_end=END)
    as_text = timeline.with_columns(pl.col("site", "node_type", "pool", "state", "resource").cast(pl.String))
    typed = hours_conservation(HOST, timeline, start=T0, end=END, step=HOUR, open_end=END)
    text = hours_conservation(HOST, as_text, start=T0, end=END, step=HOUR, open_end=END)
    assert text.equals(typed)
    assert typed.filter(pl.col("level") == "committed", pl.col("resource") == "nodes")["timeline_hours"].item() == 1.5


def test_audit_from_the_grid_equals_the_audit_of_the_long_timeline():
    """The reconstruction audits the per-series grid instead of the 45× longer long frame: every
    figure (integral per level-series, negative leaves, node-hours per pool and year, rows) must be
    what the long timeline it writes gives, to the bit. Two node types, two years, negative and
    fractional leaves, one tiny negative leaf under the tolerance."""
    import random

    from exporter.engine.sweepline import exact_sum
    from exporter.reconstruct.audit_timeline import timeline_accounting, window_span_hours
    from exporter.reconstruct.pools import node_hours_summary
    from exporter.reconstruct.timeline import timeline_grid

    rng = random.Random(5)
    t0, end = datetime(2019, 12, 31, 20), datetime(2020, 1, 1, 6)
    rows = [span("total", t0, None, node_type="a", nodes=3.0), span("total", t0, None, node_type="b", nodes=2.0),
            span("reservable", t0, None, node_type="a", nodes=2.0), span("ondemand", t0, None, node_type="b"),
            # no lease behind this instance: idle = committed − occupied < 0 (a counted negative leaf)
            span("occupied", t0 + HOUR, t0 + 2 * HOUR, booking="reservation", node_type="a"),
            # round-off size: under the tolerance, not counted
            span("occupied", t0 + 3 * HOUR, t0 + 4 * HOUR, booking="reservation", node_type="a", nodes=1e-12)]
    for _ in range(300):
        begin = t0 + timedelta(minutes=rng.uniform(0, 600))
        rows.append(span(rng.choice(["committed", "occupied"]), begin, begin + timedelta(minutes=rng.uniform(1, 200)),
                         booking="reservation", node_type=rng.choice("ab"), nodes=rng.uniform(0.1, 1.3),
                         memory_mb=rng.uniform(1, 1e5)))
    spans = frame(*rows)
    grid = timeline_grid(spans, start=t0, end=end, step=HOUR, open_end=end)
    long = grid.long()
    assert long.equals(timeline_from_spans(spans, start=t0, end=end, step=HOUR, open_end=end))
    # the figures as the long timeline gives them (what the audit once computed from it)
    nodes = long.filter(pl.col("resource") == "nodes")
    by_pool = nodes.group_by(pl.col("pool").cast(pl.String)).agg(exact_sum(pl.col("value")))
    unknown = nodes.filter(pl.col("pool") == "unknown").group_by(year=pl.col("timestamp").dt.year()).agg(
        exact_sum(pl.col("value")))
    from_long = {"rows": long.height, "negative_leaves": negative_leaves(long).height,
                 "pools": node_hours_summary(by_pool, unknown, step=HOUR),
                 "conservation": hours_conservation(spans, long, start=t0, end=end, step=HOUR,
                                                    open_end=end).drop("difference").to_dicts()}
    from_grid = timeline_accounting(spans, grid, start=t0, end=end, step=HOUR, snapshot_time=end)
    assert {key: from_grid[key] for key in from_long} == from_long
    assert from_long["negative_leaves"] > 0 and from_long["rows"] == long.height
    # the pipeline makes the spans' half first, apart from the lens's peak: the same figures
    counted = window_span_hours(spans, start=t0, end=end, step=HOUR, snapshot_time=end)
    assert timeline_accounting(spans, grid, start=t0, end=end, step=HOUR, snapshot_time=end, counted=counted) == from_grid
    assert set(from_long["pools"]["unknown_node_hours_by_year"]) == {"2019", "2020"}


def test_grid_negative_leaves_counts_what_the_long_timeline_shows():
    """The grid's count (with its shortcut for a grid without negatives) equals the long
    timeline's rows below tolerance, with and without an occupied span outside any commitment."""
    from exporter.reconstruct.audit_timeline import grid_negative_leaves
    from exporter.reconstruct.timeline import timeline_grid

    base = [span("total", at(0), None), span("reservable", at(0), None), span("committed", at(1), at(3))]
    for extra in ([], [span("occupied", at(2), at(5), booking="reservation")]):
        grid = timeline_grid(frame(*base, *extra), start=at(0), end=at(6), step=timedelta(hours=1), open_end=at(6))
        expected = negative_leaves(grid.long()).height
        assert grid_negative_leaves(grid) == expected
        assert (expected > 0) == bool(extra)


def test_a_grid_with_groups_but_no_times_has_the_long_timelines_audit():
    """start == end: the grid has its node types but no times; its audit figures are the long
    timeline's (no rows), where the per-group sums of the grid once failed (ShapeError)."""
    from exporter.reconstruct.audit_timeline import timeline_hours_by_level
    from exporter.reconstruct.timeline import timeline_grid

    spans = frame(span("total", at(0), None), span("reservable", at(0), None, node_type="b"))
    grid = timeline_grid(spans, start=at(2), end=at(2), step=HOUR, open_end=at(2))
    assert grid.groups.height == 2 and grid.times.len() == 0
    long = grid.long()
    assert timeline_hours_by_level(grid, step=HOUR).equals(timeline_hours_by_level(long, step=HOUR))
    assert hours_conservation(spans, grid, start=at(2), end=at(2), step=HOUR, open_end=at(2)).equals(
        hours_conservation(spans, long, start=at(2), end=at(2), step=HOUR, open_end=at(2)))
