"""Sweepline on hand-built frames (the functions the timeline runs: signed_changes, sums_by_sorted_key).

Semantics: a span adds its values at start and removes them at end, so the level at t counts
spans with start <= t < end; a null end is closed at open_end; changes at one time add up.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from exporter.engine.sweepline import signed_changes, sums_by_sorted_key

SNAPSHOT = datetime(2020, 1, 10)


def day(d: int) -> datetime:
    return datetime(2020, 1, d)


def spans(keys, starts, ends, values) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"k": keys, "start": starts, "end": ends, "v": values},
        schema_overrides={"start": pl.Datetime("us"), "end": pl.Datetime("us"), "v": pl.Float64},
    )


def changes(frame: pl.LazyFrame) -> list[tuple]:
    """signed_changes of ``frame`` (in no particular order), sorted for comparison."""
    got = signed_changes(frame, keys=["k"], values=["v"], open_end=SNAPSHOT)
    return sorted(tuple(r) for r in got.select("k", "time", "v").collect().rows())


def test_span_adds_value_at_start_and_removes_it_at_end():
    assert changes(spans(["a"], [day(1)], [day(3)], [2.0])) == [("a", day(1), 2.0), ("a", day(3), -2.0)]


def test_open_span_is_closed_at_open_end():
    assert changes(spans(["a"], [day(1)], [None], [1.0])) == [("a", day(1), 1.0), ("a", SNAPSHOT, -1.0)]


def test_simultaneous_changes_of_one_key_add_up():
    frame = spans(["a", "a", "b"], [day(1), day(2), day(2)], [day(2), day(4), day(4)], [1.0, 3.0, 5.0])
    summed = sums_by_sorted_key(signed_changes(frame, keys=["k"], values=["v"], open_end=SNAPSHOT),
                                by=["k", "time"], values=["v"])
    assert summed.select("k", "time", "v").collect().rows() == [
        ("a", day(1), 1.0), ("a", day(2), 2.0), ("a", day(4), -3.0),
        ("b", day(2), 5.0), ("b", day(4), -5.0),
    ]


def test_empty_span_changes_nothing_and_null_value_counts_as_zero():
    frame = spans(["a", "a"], [day(2), day(5)], [day(2), day(6)], [7.0, None])
    assert changes(frame) == [("a", day(5), 0.0), ("a", day(6), 0.0)]


def test_sums_per_key_are_bit_identical_between_runs():
    """Large groups of floats whose total depends on the order they are added in: the parallel
    engine must add them in the same order every run (polars' own grouped sum did not)."""
    import math

    noise = pl.int_range(0, 2_000_000, eager=True).hash(seed=5)  # fixed pseudo-random u64s
    frame = pl.DataFrame({"k": (noise % 40).cast(pl.Int64),
                          "v": ((noise // 40) % 2_000_001).cast(pl.Float64) / 1e6 - 1.0})
    frame = frame.with_columns(pl.col("v") * 10.0 ** ((noise // 97) % 12).cast(pl.Float64))
    runs = [sums_by_sorted_key(frame.lazy(), by=["k"], values=["v"], few_keys=few).collect()
            for _ in range(3) for few in (False, True)]
    assert runs[0]["k"].to_list() == list(range(40))
    for other in runs[1:]:  # also: both ways add each key's rows in input order, to the bit
        assert other.equals(runs[0])
        assert other["v"].to_numpy().tobytes() == runs[0]["v"].to_numpy().tobytes()
    exact = {k: math.fsum(part["v"]) for (k,), part in frame.group_by("k")}
    for k, v in runs[0].rows():
        assert v == pytest.approx(exact[k], rel=1e-9, abs=1e-3)
