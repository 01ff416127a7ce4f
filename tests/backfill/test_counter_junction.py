"""The history -> live junction of every counter: the live exporter's first value is never below
the last backfilled one (a drop is a counter reset to Prometheus), however long the history.

The backfill sums hourly means (Σ value × step), the live exporter integrates the spans; they
agree up to rounding, and the live values are published FLOAT_NOISE_GUARD × the node type's
total high. A float running sum's rounding grows with the number of hours: a VM holding 3 of a
host's 28 vCPUs for ten years left the backfilled ``available`` counter 1.4 guards above the
live one (a reset) before the history sums were rounded once (exporter.engine.running).
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from itertools import accumulate

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from exporter.backfill.checked import checked_timeline
from exporter.backfill.openmetrics import sample_values
from exporter.columns import SPAN_SCHEMA, conform
from exporter.engine.running import _settled_run_quanta, running_sum_before, running_sum_before_runs
from exporter.engine.runs import runs
from exporter.live.source import guarded, guarded_devices
from exporter.reconstruct.device_family import COUNTER, history_frames, live_frames
from exporter.reconstruct.timeline import counters_until, timeline_from_spans

T0 = dt.datetime(2015, 1, 1)
H = dt.timedelta(hours=1)
TEN_YEARS = 87_600  # hours
LEAF = ["node_type", "pool", "state", "resource"]


def a_vm_for_ten_years(share: float) -> pl.DataFrame:
    """One on-demand host of node type ``kvm``, a VM holding ``share`` of it the whole time
    (nodes only): every hour's ``available`` mean is the same fraction, 1 − share."""
    rows = [("total", None, 1.0), ("ondemand", None, 1.0), ("occupied", "ondemand", share)]
    frame = pl.DataFrame([{"site": "s", "level": level, "booking": booking, "hypervisor_hostname": "h",
                           "node_type": "kvm", "pool": None, "start": T0, "end": None, "nodes": nodes}
                          for level, booking, nodes in rows])
    return conform(frame, SPAN_SCHEMA)


def exact_sums_before(terms: list[float]) -> list[float]:
    """Σ of the earlier terms in rational arithmetic, each rounded once to a float."""
    return [float(total) for total in accumulate(map(Fraction, terms[:-1]), initial=Fraction(0))]


def test_running_sums_are_the_exact_sums_rounded_once():
    terms = [25 / 28 * 3600.0] * 5_000 + [0.1, -0.3, 1e-20, 2.5e6, 0.0]
    got = pl.DataFrame({"g": 1, "x": terms}).select(running_sum_before(pl.col("x"), over="g"))["x"].to_list()
    assert got == exact_sums_before(terms)


def test_running_sums_restart_per_group_and_keep_zeros_exact():
    frame = pl.DataFrame({"g": [1, 1, 2, 2, 3, 3], "x": [0.5, 0.25, 3.0, 4.0, 0.0, 0.0]})
    assert frame.select(running_sum_before(pl.col("x"), over="g"))["x"].to_list() == [0, 0.5, 0, 3.0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=True)),
                min_size=1, max_size=60),
       st.booleans())
def test_running_sums_over_runs_are_the_expression_bit_for_bit(rows, in_runs):
    """backfill's numpy path (groups in runs) gives the expression's bits; groups split over
    several runs fall back to the expression."""
    if in_runs:
        rows = sorted(rows, key=lambda row: row[0])  # stable: each group's rows keep their order
    groups = pl.Series("g", [g for g, _ in rows], dtype=pl.UInt32)
    terms = pl.Series("x", [x * 3600.0 / 7.0 for _, x in rows])  # fractional: low parts are not zero
    expected = pl.DataFrame({"g": groups, "x": terms}).select(running_sum_before(pl.col("x"), over="g"))["x"]
    got = running_sum_before_runs(terms, groups)
    assert got.name == "x"
    assert np.array_equal(got.to_numpy().view(np.int64), expected.to_numpy().view(np.int64))


def test_running_sums_over_runs_of_long_fractional_series():
    rng = np.random.default_rng(7)
    groups = pl.Series("g", np.repeat(np.arange(40, dtype=np.uint32), 5_000))
    terms = pl.Series("x", rng.random(groups.len()) * rng.choice([1e-3, 1.0, 7.3, 1e6, -2.5], groups.len()))
    expected = pl.DataFrame({"g": groups, "x": terms}).select(running_sum_before(pl.col("x"), over="g"))["x"]
    got = running_sum_before_runs(terms, groups)
    assert np.array_equal(got.to_numpy().view(np.int64), expected.to_numpy().view(np.int64))


def test_running_sums_over_runs_whose_quantum_a_sum_cannot_settle_are_the_expression():
    """A group whose Σ|terms| is a power of two: numpy's sum of it could land either side, so the
    quantum is not taken from it (the runs' quanta are not settled) but from the expression."""
    groups = pl.Series("g", [1] * 4 + [2] * 3, dtype=pl.UInt32)
    terms = pl.Series("x", [1024.0, -1024.0, 1024.0, 1024.0] + [0.1, 0.2, 0.3])  # group 1: Σ|x| = 2^12
    starts, ends = runs(groups.to_numpy())
    assert _settled_run_quanta(terms.to_numpy(), starts, ends) is None  # the fallback path is taken
    expected = pl.DataFrame({"g": groups, "x": terms}).select(running_sum_before(pl.col("x"), over="g"))["x"]
    got = running_sum_before_runs(terms, groups)
    assert np.array_equal(got.to_numpy().view(np.int64), expected.to_numpy().view(np.int64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_term_over_runs_raises_as_the_expression(bad):
    """numpy's cast of NaN or inf to int64 gives garbage silently; the expression's cast raises."""
    groups = pl.Series("g", [1, 1, 1, 2], dtype=pl.UInt32)
    terms = pl.Series("x", [1.0, bad, 2.0, 3.0])
    with pytest.raises(pl.exceptions.InvalidOperationError):
        running_sum_before_runs(terms, groups)


def test_a_null_term_over_runs_is_the_expression():
    groups = pl.Series("g", [1, 1, 1], dtype=pl.UInt32)
    terms = pl.Series("x", [1.0, None, 2.0])
    expected = pl.DataFrame({"g": groups, "x": terms}).select(running_sum_before(pl.col("x"), over="g"))["x"]
    assert running_sum_before_runs(terms, groups).to_list() == expected.to_list() == [0.0, 1.0, None]


def test_a_node_counter_never_drops_at_the_junction_after_ten_years():
    spans = a_vm_for_ten_years(3 / 28)
    end = T0 + TEN_YEARS * H
    checked = checked_timeline(timeline_from_spans(spans, start=T0, end=end, step=H, open_end=end))
    last = end - H  # the last backfilled sample; the series is flat after it at worst
    history = (sample_values(checked).filter((pl.col("family") % 2 == 1) & (pl.col("t") == int(last.timestamp())))
               .join(checked.keys, on="rank").select(*(pl.col(k).cast(pl.String) for k in LEAF), "value"))
    live = counters_until(spans, origin=T0, at=last).select(*(pl.col(k).cast(pl.String) for k in LEAF), "value")
    joined = history.join(guarded(live), on=LEAF, suffix="_live").join(live, on=LEAF, suffix="_exact")
    assert joined.height == history.height > 0
    assert joined.filter(pl.col("value_live") < pl.col("value")).height == 0
    # and they are still one series: within a few ulps of each other
    assert (joined["value"] - joined["value_exact"]).abs().max() <= 1e-15 * joined["value"].abs().max()


def test_a_device_counter_never_drops_at_the_junction_after_ten_years():
    devices = a_vm_for_ten_years(3 / 28).with_columns(pl.lit("reservable").alias("pool"),
                                                       pl.lit("raspberrypi4-64").alias("node_type"))
    devices = devices.with_columns(level=pl.Series(["total", "reservable", "committed"]),
                                   booking=pl.Series([None, "reservable", "reservable"]))
    end = T0 + TEN_YEARS * H
    last = end - H
    timeline = timeline_from_spans(devices, start=T0, end=end, step=H, open_end=end)
    history = history_frames(timeline, step=H)[COUNTER].filter(pl.col("timestamp") == last)
    live = guarded_devices(live_frames(devices, at=last, gauge_at=last, origin=T0))[COUNTER]
    keys = ["machine_name", "pool", "state"]
    joined = history.join(live, on=keys, suffix="_live")
    assert joined.height == history.height > 0
    assert joined.filter(pl.col("value_live") < pl.col("value")).height == 0
