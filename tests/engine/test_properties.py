"""Property tests on random span sets; expectations come from plain-Python reference math.

Properties: (1) resampling conserves resource-hours cell by cell; (2) clipping loses no time
and keeps inside pieces inside the parents' union; (3) leaves sum to total; (4) counters at
grid points equal cumulative timeline sums; (5) union is idempotent, never longer than the sum,
and duplicate overlap accounts for the difference; the hours invariant holds on random spans.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.engine.eager_clip import clip_rows_to_parent
from exporter.engine.intervals import clip_to_parent, duplicate_overlap, union_intervals
from exporter.engine.sweepline import signed_changes
from exporter.engine.resample import dense_grid_from_deltas, grid_end, grid_size
from exporter.columns import SPAN_SCHEMA, conform
from exporter.reconstruct.leaves import SERIES
from exporter.reconstruct.audit_timeline import check_hours_conserved, hours_conservation
from exporter.reconstruct.timeline import counters_until, timeline_from_spans

T0 = datetime(2020, 1, 1)
OPEN_END = T0 + timedelta(hours=20)  # after every generated start and window
FAST = settings(max_examples=40, deadline=None)
SLOW = settings(max_examples=15, deadline=None)


def minutes(m: int) -> datetime:
    return T0 + timedelta(minutes=m)


@st.composite
def interval(draw, keys=("a", "b")):
    start = draw(st.integers(-120, 600))
    length = draw(st.one_of(st.none(), st.integers(0, 400)))
    return draw(st.sampled_from(keys)), minutes(start), None if length is None else minutes(start + length)


def windows_frame(rows, **extra) -> pl.LazyFrame:
    keys, starts, ends = zip(*rows) if rows else ((), (), ())
    return pl.LazyFrame(
        {"k": list(keys), "start": list(starts), "end": list(ends), **extra},
        schema={"k": pl.String, "start": pl.Datetime("us"), "end": pl.Datetime("us"),
                **{name: pl.Float64 for name in extra}},
    )


def seconds_inside(start, end, lo, hi) -> float:
    """Reference: seconds of [start, end) inside [lo, hi); open end closed at OPEN_END."""
    end = OPEN_END if end is None else end
    return max(0.0, (min(end, hi) - max(start, lo)).total_seconds())


def python_union(pieces):
    merged = []
    for s, e in sorted(pieces):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        elif s < e:
            merged.append([s, e])
    return merged


step_choice = st.sampled_from([timedelta(minutes=30), timedelta(hours=1), timedelta(minutes=90)])


@FAST
@given(st.lists(interval(), max_size=12), st.lists(st.integers(0, 5), min_size=12, max_size=12),
       step_choice, st.integers(1, 600))
def test_resampled_cell_means_equal_reference_integrals(rows, values, step, window_minutes):
    spans = windows_frame(rows, v=[float(x) for x in values[: len(rows)]])
    end = minutes(window_minutes)
    deltas = signed_changes(spans, keys=["k"], values=["v"], open_end=OPEN_END)
    grid = dense_grid_from_deltas(deltas, keys=["k"], values=["v"], start=T0, end=end, step=step)
    got = {(k, t): v for k, t, v in grid.long().rows()}
    n = grid_size(start=T0, end=end, step=step)
    # keys with at least one non-empty span have deltas, hence grid rows
    live_keys = {k for k, s, e in rows if seconds_inside(s, e, datetime.min, datetime.max) > 0}
    assert len(got) == n * len(live_keys)
    for (k, t), value in got.items():
        expected = sum(
            v * seconds_inside(s, e, t, t + step)
            for (kk, s, e), v in zip(rows, values) if kk == k
        ) / step.total_seconds()
        assert abs(value - expected) < 1e-9


@FAST
@given(st.lists(interval(("a", "b", "c")), max_size=8), st.lists(interval(("a", "b")), max_size=8))
def test_clipping_loses_no_time_and_inside_lies_within_parents(children, parents):
    kids = windows_frame(children, id=[float(i) for i in range(len(children))])
    inside, outside = clip_to_parent(kids, windows_frame(parents), by=["k"], open_end=OPEN_END)
    inside, outside = inside.collect(), outside.collect()
    eras = {
        k: python_union([(s, OPEN_END if e is None else e) for kk, s, e in parents if kk == k])
        for k in ("a", "b")
    }
    for i, (k, s, e) in enumerate(children):
        mine = [(r["start"], r["end"]) for r in inside.filter(pl.col("id") == i).iter_rows(named=True)]
        rest = [(r["start"], r["end"]) for r in outside.filter(pl.col("id") == i).iter_rows(named=True)]
        child_seconds = seconds_inside(s, e, datetime.min, datetime.max)
        total = sum(seconds_inside(a, b, datetime.min, datetime.max) for a, b in mine + rest)
        assert total == child_seconds
        for a, b in mine:
            b = OPEN_END if b is None else b
            assert any(lo <= a and b <= hi for lo, hi in eras.get(k, []))
        for a, b in rest:
            assert all(seconds_inside(a, b, lo, hi) == 0 for lo, hi in eras.get(k, []))


@FAST
@given(st.lists(interval(), max_size=12))
def test_union_is_idempotent_and_duplicates_account_for_the_difference(rows):
    frame = windows_frame(rows)
    once = union_intervals(frame, by=["k"], open_end=OPEN_END).collect()
    twice = union_intervals(once.lazy(), by=["k"], open_end=OPEN_END).collect()
    assert once.equals(twice)
    overlap = duplicate_overlap(frame, by=["k"], open_end=OPEN_END).collect()
    for k in ("a", "b"):
        raw = sum(seconds_inside(s, e, datetime.min, datetime.max) for kk, s, e in rows if kk == k)
        merged = python_union([(s, OPEN_END if e is None else e) for kk, s, e in rows if kk == k])
        union_seconds = sum((e - s).total_seconds() for s, e in merged)
        got = once.filter(k=k)
        assert [list(r) for r in got.select("start", "end").rows()] == merged
        assert union_seconds <= raw
        duplicate_seconds = overlap.filter(k=k)["overlap_hours"].sum() * 3600
        assert abs(raw - union_seconds - duplicate_seconds) < 1e-6


@st.composite
def span_rows(draw):
    rows = []
    for _ in range(draw(st.integers(1, 10))):
        level, booking = draw(st.sampled_from(SERIES))
        _, start, end = draw(interval())
        rows.append(dict(site=draw(st.sampled_from(["s", "t"])), level=level, booking=booking,
                         node_type=draw(st.sampled_from(["cpu", "gpu"])), start=start, end=end,
                         nodes=float(draw(st.integers(0, 3))), vcpus=float(draw(st.integers(0, 64))),
                         memory_mb=float(draw(st.integers(0, 4096))), disk_gb=0.0, gpus=0.0))
    return rows


@SLOW
@given(span_rows(), step_choice)
def test_leaves_sum_to_total_and_hours_are_conserved(rows, step):
    spans = conform(pl.DataFrame(rows), SPAN_SCHEMA)
    end = minutes(480)
    tl = timeline_from_spans(spans, start=T0, end=end, step=step, open_end=OPEN_END)
    sums = tl.filter(resource="nodes").group_by("site", "timestamp", "node_type").agg(
        pl.col("value").sum()
    )
    for site, t, node_type, value in sums.rows():
        expected = sum(
            r["nodes"] * seconds_inside(r["start"], r["end"], t, t + step)
            for r in rows
            if r["level"] == "total" and (r["site"], r["node_type"]) == (site, node_type)
        ) / step.total_seconds()
        assert abs(value - expected) < 1e-9
    check_hours_conserved(hours_conservation(spans, tl, start=T0, end=end, step=step,
                                             open_end=OPEN_END))


@SLOW
@given(span_rows(), st.integers(0, 8))
def test_counters_at_grid_points_equal_cumulative_timeline_sums(rows, k):
    spans = conform(pl.DataFrame(rows), SPAN_SCHEMA)
    step = timedelta(hours=1)
    tl = timeline_from_spans(spans, start=T0, end=minutes(480), step=step, open_end=OPEN_END)
    at = T0 + k * step
    keys = ["site", "node_type", "pool", "state", "resource"]
    cumulative = tl.filter(pl.col("timestamp") < at).group_by(keys).agg(
        (pl.col("value").sum() * 3600).alias("expected")
    )
    got = counters_until(spans, origin=T0, at=at).join(cumulative, on=keys, how="left")
    assert got.height == tl.select(keys).unique().height
    scale = got["value"].abs().max() or 1.0
    assert ((got["value"] - got["expected"].fill_null(0.0)).abs() <= 1e-9 * scale).all()
    assert grid_end(start=T0, end=minutes(480), step=step) >= at


HOUR = timedelta(hours=1)
# Bounds on a coarse grid, so that equal and touching bounds are common; ends equal to and past
# OPEN_END (the production snapshot cut sets end = snapshot), and before the start (empty).
clip_start = st.integers(-1, 12).map(lambda h: T0 + h * HOUR)
clip_end = st.one_of(st.none(), st.sampled_from([OPEN_END, OPEN_END + HOUR]), st.integers(-1, 8))


@st.composite
def clip_rows(draw, count, parents=()):
    """Rows of two text keys and an integer key (a null in any sometimes), a window (open, empty,
    reversed, repeated, touching an earlier row of its keys, ending at or past OPEN_END) and a raw
    end (the window's, another, or null). Some rows start with a parent of their keys."""
    rows = []
    for _ in range(count):
        closed = [row for row in rows if row[4] is not None]
        if closed and draw(st.booleans()):  # a row of the same keys that touches an earlier one
            k, j, i, _, start, _ = draw(st.sampled_from(closed))
        elif parents and draw(st.booleans()):
            k, j, i, start, _, _ = draw(st.sampled_from(parents))
        else:
            k, j, i = (draw(st.sampled_from(values)) for values in (["a", "b", "c", None], ["x", "y", None], [1, 2, None]))
            start = draw(clip_start)
        end = draw(clip_end)
        end = start + end * HOUR if isinstance(end, int) else end
        original_end = draw(st.sampled_from([end, None] if end is None else [end, end + HOUR, None]))
        rows.append((k, j, i, start, end, original_end))
    return rows


def clip_frame(rows, *, raw: bool) -> pl.DataFrame:
    k, j, i, starts, ends, original_ends = (list(c) for c in zip(*rows)) if rows else ([], [], [], [], [], [])
    frame = pl.DataFrame({"k": k, "j": j, "i": i, "start": starts, "end": ends, "n": list(range(len(rows))),
                          "original_end": original_ends},
                         schema={"k": pl.String, "j": pl.String, "i": pl.Int64, "start": pl.Datetime("us"),
                                 "end": pl.Datetime("us"), "n": pl.Int64, "original_end": pl.Datetime("us")})
    if not raw:
        return frame.drop("original_end")
    # A raw window recorded on some rows (null on the others: the row's own)
    recorded = pl.col("n") % 3 == 0
    return frame.with_columns(pl.when(recorded).then(pl.col("start") - HOUR).alias("original_start"),
                              pl.when(recorded).then(pl.col("original_end")).alias("original_end"))


@FAST
@given(st.integers(0, 6).flatmap(clip_rows).flatmap(
    lambda parents: st.tuples(st.just(parents), st.integers(0, 8).flatmap(lambda n: clip_rows(n, parents)))),
       st.sampled_from([["k"], ["k", "j"], ["i"], ["i", "k"]]))
def test_clip_rows_to_parent_is_clip_to_parent(parents_and_children, by):
    """The numpy clip of eager frames gives clip_to_parent's pieces, in its order, on each side
    (keys of text and of integers, one or two)."""
    parent_rows, children_rows = parents_and_children
    children, parents = clip_frame(children_rows, raw=True), clip_frame(parent_rows, raw=False).drop("n")
    inside, outside = clip_to_parent(children.lazy(), parents.lazy(), by=by, open_end=OPEN_END)
    for side, expected in ((False, inside), (True, outside)):
        got = clip_rows_to_parent(children, parents, by=by, open_end=OPEN_END, outside=side)
        assert got.equals(expected.drop("trimmed").collect()), (side, got, expected.collect())
