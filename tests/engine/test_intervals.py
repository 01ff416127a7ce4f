"""Interval algebra on hand-built frames.

Semantics: intervals are [start, end); a null end is open and closed at ``open_end`` where a
bound is needed; touching intervals merge; clipping splits a child into pieces inside and
outside the union of its key's parents, losing no time.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from exporter.engine.intervals import clip_to_parent, duplicate_overlap, union_intervals

SNAPSHOT = datetime(2020, 2, 1)


def day(d: int, h: int = 0) -> datetime:
    return datetime(2020, 1, d, h)


def frame(keys, starts, ends, **extra) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"k": keys, "start": starts, "end": ends, **extra},
        schema_overrides={"start": pl.Datetime("us"), "end": pl.Datetime("us")},
    )


def windows(lf: pl.LazyFrame) -> list[tuple]:
    return [tuple(r) for r in lf.select("k", "start", "end").collect().rows()]


def test_overlapping_intervals_merge_into_one():
    f = frame(["a", "a"], [day(1), day(2)], [day(3), day(4)])
    assert windows(union_intervals(f, by=["k"])) == [("a", day(1), day(4))]


def test_union_keeps_the_input_time_unit():
    f = frame(["a", "a"], [day(1), day(2)], [day(3), day(4)]).cast({"start": pl.Datetime("ms"), "end": pl.Datetime("ms")})
    merged = union_intervals(f, by=["k"]).collect()
    assert merged.schema["start"] == merged.schema["end"] == pl.Datetime("ms")
    assert merged.rows() == [("a", day(1), day(4))]


def test_touching_intervals_merge_because_half_open_ends_meet():
    f = frame(["a", "a"], [day(1), day(2)], [day(2), day(3)])
    assert windows(union_intervals(f, by=["k"])) == [("a", day(1), day(3))]


def test_disjoint_intervals_and_other_keys_stay_apart():
    f = frame(["a", "a", "b"], [day(1), day(5), day(1)], [day(2), day(6), day(9)])
    assert windows(union_intervals(f, by=["k"])) == [
        ("a", day(1), day(2)),
        ("a", day(5), day(6)),
        ("b", day(1), day(9)),
    ]


def test_contained_interval_disappears_into_its_container():
    f = frame(["a", "a", "a"], [day(1), day(2), day(8)], [day(9), day(3), day(10)])
    assert windows(union_intervals(f, by=["k"])) == [("a", day(1), day(10))]


def test_open_interval_stays_open_without_open_end():
    f = frame(["a", "a"], [day(1), day(2)], [day(3), None])
    assert windows(union_intervals(f, by=["k"])) == [("a", day(1), None)]


def test_open_interval_is_closed_at_open_end():
    f = frame(["a"], [day(2)], [None])
    assert windows(union_intervals(f, by=["k"], open_end=SNAPSHOT)) == [("a", day(2), SNAPSHOT)]


def test_empty_interval_covers_nothing():
    f = frame(["a", "a"], [day(1), day(5)], [day(1), day(4)])
    assert windows(union_intervals(f, by=["k"])) == []


def test_duplicate_overlap_counts_hours_already_covered_by_earlier_rows():
    f = frame(["a", "a", "a"], [day(1), day(2), day(5)], [day(3), day(2, 12), day(6)])
    got = duplicate_overlap(f, by=["k"], open_end=SNAPSHOT).collect()
    # second row lies wholly inside the first (12 h); the third overlaps nothing.
    assert got["overlap_hours"].to_list() == [0.0, 12.0, 0.0]


def test_duplicate_overlap_counts_partial_overlap_of_open_row():
    f = frame(["a", "a"], [day(1), day(30)], [None, day(31)])
    got = duplicate_overlap(f, by=["k"], open_end=SNAPSHOT).collect()
    assert got["overlap_hours"].to_list() == [0.0, 24.0]


def test_child_inside_its_parent_is_kept_whole_and_untrimmed():
    children = frame(["a"], [day(2)], [day(3)], x=[7])
    parents = frame(["a"], [day(1)], [day(4)])
    inside, outside = clip_to_parent(children, parents, by=["k"], open_end=SNAPSHOT)
    got = inside.collect()
    assert got.select("k", "x", "start", "end", "trimmed").rows() == [
        ("a", 7, day(2), day(3), False)
    ]
    assert got.select("original_start", "original_end").row(0) == (day(2), day(3))
    assert outside.collect().height == 0


def test_child_overlapping_two_parent_eras_is_split_and_the_gaps_are_outside():
    children = frame(["a"], [day(1)], [day(10)], x=[1])
    parents = frame(["a", "a"], [day(2), day(4)], [day(3), day(5)])
    inside, outside = clip_to_parent(children, parents, by=["k"], open_end=SNAPSHOT)
    assert windows(inside) == [("a", day(2), day(3)), ("a", day(4), day(5))]
    assert windows(outside) == [
        ("a", day(1), day(2)),
        ("a", day(3), day(4)),
        ("a", day(5), day(10)),
    ]
    both = pl.concat([inside, outside]).collect()
    assert both["trimmed"].all()
    assert set(both.select("original_start", "original_end").rows()) == {(day(1), day(10))}


def test_child_without_parent_is_wholly_outside():
    children = frame(["b"], [day(1)], [day(2)], x=[1])
    parents = frame(["a"], [day(1)], [day(2)])
    inside, outside = clip_to_parent(children, parents, by=["k"], open_end=SNAPSHOT)
    assert inside.collect().height == 0
    assert outside.collect().select("k", "x", "start", "end", "trimmed").rows() == [
        ("b", 1, day(1), day(2), False)
    ]


def test_open_child_in_open_parent_stays_open():
    children = frame(["a"], [day(1)], [None], x=[1])
    parents = frame(["a"], [day(3)], [None])
    inside, outside = clip_to_parent(children, parents, by=["k"], open_end=SNAPSHOT)
    assert windows(inside) == [("a", day(3), None)]
    assert windows(outside) == [("a", day(1), day(3))]
    assert inside.collect()["original_end"].to_list() == [None]


def test_repeated_clipping_keeps_the_rawest_window():
    children = frame(["a"], [day(1)], [day(10)], x=[1])
    once, _ = clip_to_parent(
        children, frame(["a"], [day(2)], [day(9)]), by=["k"], open_end=SNAPSHOT
    )
    twice, _ = clip_to_parent(
        once, frame(["a"], [day(3)], [day(8)]), by=["k"], open_end=SNAPSHOT
    )
    got = twice.collect()
    assert windows(twice) == [("a", day(3), day(8))]
    assert got.select("original_start", "original_end").row(0) == (day(1), day(10))
