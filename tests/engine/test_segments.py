"""Per-key segments on hand-built frames: made disjoint (the earlier one keeps an overlap), and
children cut along them, each piece taking its segment's values; time in no segment is in no piece;
and the cut of random children by random segments against a plain-Python reference.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _reference_pieces(children: list[tuple], segments: list[tuple]) -> list[tuple]:
    """Plain Python: per child (in order), its piece inside each disjoint segment of its key, by start."""
    def closed(end):
        return SNAPSHOT if end is None else end

    out = []
    for key, start, end, size, note in children:
        pieces = []
        for seg_key, seg_start, seg_end, host, seg_size in segments:
            lo, hi = max(start, seg_start), min(closed(end), closed(seg_end))
            if key is not None and seg_key == key and lo < hi:
                pieces.append((key, lo, None if end is None and hi == SNAPSHOT else hi, seg_size, note, host))
        out.extend(sorted(pieces, key=lambda piece: piece[1]))
    return out


@st.composite
def _windows(draw, count: int):
    rows = []
    for _ in range(draw(st.integers(0, count))):
        start = draw(st.integers(1, 27))
        length = draw(st.one_of(st.none(), st.integers(1, 10)))
        rows.append((draw(st.sampled_from(["a", "b", "c", None])), day(start),
                     None if length is None else day(start) + timedelta(days=length)))
    return rows


def _typed(rows: list[tuple], **extra: tuple[list, pl.DataType]) -> pl.LazyFrame:
    keys, starts, ends = (list(column) for column in zip(*rows)) if rows else ([], [], [])
    return pl.LazyFrame({"k": keys, "start": starts, "end": ends, **{name: values for name, (values, _) in extra.items()}},
                        schema={"k": pl.String, "start": pl.Datetime("us"), "end": pl.Datetime("us"),
                                **{name: dtype for name, (_, dtype) in extra.items()}})


@settings(max_examples=60, deadline=None)
@given(children=_windows(6), segments=_windows(6))
def test_split_by_segments_matches_a_plain_reference(children, segments):
    # Random children (``note`` passes through, ``size`` is replaced by the segment's) cut by random
    # segments made disjoint first; null keys match nothing.
    kids = [(k, s, e, index, f"n{index}") for index, (k, s, e) in enumerate(children)]
    child_frame = _typed(children, size=([row[3] for row in kids], pl.Int64), note=([row[4] for row in kids], pl.String))
    parents = first_wins(_typed(segments, host=([f"h{i}" for i in range(len(segments))], pl.String),
                                size=(list(range(100, 100 + len(segments))), pl.Int64)),
                         by=["k"], open_end=SNAPSHOT).collect()
    got = split_by_segments(child_frame, parents.lazy(), by=["k"], take=["host", "size"], open_end=SNAPSHOT).collect()
    assert got.columns == ["k", "start", "end", "size", "note", "host"]
    assert got.rows() == _reference_pieces(kids, parents.select("k", "start", "end", "host", "size").rows())
