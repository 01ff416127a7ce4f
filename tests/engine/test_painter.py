"""The painter on random layers; expectations from plain-Python minute sets (reference math)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.engine.painter import paint

T0 = datetime(2020, 1, 1)
HORIZON = 240  # minutes; open ends close here
OPEN_END = T0 + timedelta(minutes=HORIZON)
FAST = settings(max_examples=60, deadline=None)


@st.composite
def interval(draw):
    start = draw(st.integers(0, HORIZON - 1))
    length = draw(st.one_of(st.none(), st.integers(1, 120)))
    end = None if length is None else min(start + length, HORIZON)
    return draw(st.sampled_from(("a", "b"))), start, end


layer = st.lists(interval(), max_size=5)


def frame(rows) -> pl.DataFrame:
    """The rows as a layer (no raw window recorded: null original_start/original_end)."""
    return pl.DataFrame({"k": [r[0] for r in rows],
                         "start": [T0 + timedelta(minutes=r[1]) for r in rows],
                         "end": [None if r[2] is None else T0 + timedelta(minutes=r[2]) for r in rows],
                         "original_start": None, "original_end": None},
                        schema={"k": pl.String, "start": pl.Datetime("us"), "end": pl.Datetime("us"),
                                "original_start": pl.Datetime("us"), "original_end": pl.Datetime("us")})


def minute_set(rows) -> set[tuple[str, int]]:
    """Every (key, minute) the rows cover (reference)."""
    return {(k, m) for k, s, e in rows for m in range(s, HORIZON if e is None else e)}


def minutes_of(pieces: pl.DataFrame) -> list[tuple[str, int]]:
    """(key, minute) of every piece, with repeats (a minute in two pieces appears twice)."""
    out = []
    for k, s, e in pieces.select("k", "start", "end").iter_rows():
        end = OPEN_END if e is None else e
        out += [(k, m) for m in range(int((s - T0).total_seconds() // 60), int((end - T0).total_seconds() // 60))]
    return out


@FAST
@given(st.lists(layer, min_size=1, max_size=4), st.lists(layer, min_size=4, max_size=4))
def test_each_minute_goes_to_the_highest_layer_that_speaks(layers, tombs):
    tombstones = [frame(t) if i % 2 else None for i, t in enumerate(tombs[:len(layers)])]
    painted = paint([frame(rows) for rows in layers], by=["k"], open_end=OPEN_END, tombstones=tombstones)
    silenced: set[tuple[str, int]] = set()
    for index, (rows, result) in enumerate(zip(layers, painted)):
        own = minute_set(rows)
        kept = minutes_of(result)
        assert set(kept) == own - silenced  # exactly what no higher layer (or tombstone) covers
        silenced |= own | (minute_set(tombs[index]) if tombstones[index] is not None else set())


@FAST
@given(st.lists(layer, min_size=1, max_size=3))
def test_each_interval_keeps_once_each_of_its_minutes_no_higher_layer_covers(layers):
    painted = paint([frame(rows).with_row_index("row") for rows in layers], by=["k"], open_end=OPEN_END)
    silenced: set[tuple[str, int]] = set()
    for rows, kept in zip(layers, painted):
        for row, interval in enumerate(rows):
            mine = minutes_of(kept.filter(pl.col("row") == row))
            assert sorted(mine) == sorted(minute_set([interval]) - silenced)
        silenced |= minute_set(rows)


def test_a_tombstone_ends_lower_layers_and_silence_yields():
    high = frame([("a", 0, 60)])
    low = frame([("a", 0, 200), ("b", 0, 30)])
    tomb = frame([("a", 60, 120)])
    kept = paint([high, low], by=["k"], open_end=OPEN_END, tombstones=[tomb, None])[1]
    assert sorted(minutes_of(kept)) == sorted([("a", m) for m in range(120, 200)] + [("b", m) for m in range(30)])
