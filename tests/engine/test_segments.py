"""Per-key segments on hand-built frames: made disjoint (the earlier one keeps an overlap), and
children cut along them, each piece taking its segment's values; time in no segment is in no piece.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from exporter.engine.segments import first_wins, split_by_segments

SNAPSHOT = datetime(2020, 2, 1)


def day(d: int) -> datetime:
    return datetime(2020, 1, d)


def frame(keys, starts, ends, **extra) -> pl.LazyFrame:
    return pl.LazyFrame({"k": keys, "start": starts, "end": ends, **extra},
                        schema_overrides={"start": pl.Datetime("us"), "end": pl.Datetime("us")})


def test_an_earlier_segment_keeps_the_overlap_and_a_covered_one_goes():
    segments = frame(["a", "a", "a", "b"], [day(1), day(3), day(4), day(2)], [day(5), day(8), day(5), None],
                     v=["x", "y", "z", "w"])
    rows = first_wins(segments, by=["k"], open_end=SNAPSHOT).select("k", "start", "end", "v").collect().rows()
    assert rows == [("a", day(1), day(5), "x"), ("a", day(5), day(8), "y"), ("b", day(2), None, "w")]


def test_a_child_is_cut_at_segment_borders_and_takes_each_segments_values():
    children = frame(["a", "b"], [day(2), day(1)], [day(10), None], size=[1, 2])
    segments = frame(["a", "a", "b"], [day(1), day(6), day(3)], [day(4), day(12), None],
                     host=["h1", "h2", "h3"], size=[4, 8, 16])
    pieces = split_by_segments(children, segments, by=["k"], take=["host", "size"], open_end=SNAPSHOT)
    assert pieces.collect().rows() == [
        ("a", day(2), day(4), 4, "h1"),  # day 4..6 lies in no segment: in no piece
        ("a", day(6), day(10), 8, "h2"),
        ("b", day(3), None, 16, "h3"),  # an open child inside an open segment stays open
    ]


def test_a_child_with_no_segment_of_its_key_has_no_piece():
    children = frame(["a"], [day(1)], [day(2)])
    segments = frame(["b"], [day(1)], [day(2)], host=["h1"])
    assert split_by_segments(children, segments, by=["k"], take=["host"], open_end=SNAPSHOT).collect().is_empty()
