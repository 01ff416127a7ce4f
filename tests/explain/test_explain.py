"""explain on random span sets: the listed contributions add up to the timeline's own value for
any selection and cell, and to levels_at's value for an instant (the live gauge)."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
from hypothesis import given, settings, strategies as st

from exporter.explain import Selection, instant, overlapping
from exporter.explain.answer import answer
from exporter.explain.cell import Window
from exporter.explain.formula import selection_formula
from exporter.columns import POOLS, SPAN_SCHEMA, STATES, TIMELINE_RESOURCES, conform
from exporter.reconstruct.leaves import LEAF_TABLE, UNEXPORTED_SERIES
from exporter.reconstruct.timeline import levels_at, timeline_from_spans

START = dt.datetime(2024, 1, 1)
STEP = dt.timedelta(hours=1)
CELLS = 12
OPEN_END = START + dt.timedelta(hours=10, minutes=17)
KINDS = sorted({(level, booking) for _, _, terms in LEAF_TABLE for _, level, booking in terms} | set(UNEXPORTED_SERIES))
NODE_TYPES = ("a", "b", None)


@st.composite
def spans(draw) -> pl.DataFrame:
    rows = []
    for index in range(draw(st.integers(1, 25))):
        level, booking = draw(st.sampled_from(KINDS))
        start = START + dt.timedelta(minutes=draw(st.integers(-120, CELLS * 60)))
        length = draw(st.one_of(st.none(), st.integers(1, 600)))
        rows.append({"site": "s", "level": level, "booking": booking, "node_type": draw(st.sampled_from(NODE_TYPES)),
                     "source_table": "nova.instances", "source_id": str(index), "start": start,
                     "end": None if length is None else start + dt.timedelta(minutes=length),
                     "nodes": draw(st.sampled_from([1.0, 0.25, None])), "vcpus": float(draw(st.integers(0, 64))),
                     "memory_mb": 1024.0, "disk_gb": None, "gpus": 0.0,
                     "rule_id": draw(st.sampled_from([None, "r1"]))})
    return conform(pl.DataFrame(rows, schema_overrides={"start": pl.Datetime("us"), "end": pl.Datetime("us")}),
                   SPAN_SCHEMA)


selections = st.builds(
    Selection,
    node_types=st.one_of(st.none(), st.sets(st.sampled_from(["a", "b", "unknown"]), min_size=1).map(tuple)),
    pools=st.one_of(st.none(), st.sets(st.sampled_from(POOLS), min_size=1).map(tuple)),
    states=st.one_of(st.none(), st.sets(st.sampled_from(STATES), min_size=1).map(tuple)),
    resource=st.sampled_from(sorted(TIMELINE_RESOURCES)))


def leaves_of(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col("node_type", "pool", "state", "resource").cast(pl.String), "value")


def assert_adds_up(result: dict) -> None:
    scale = sum(abs(span["contribution"]) for span in result["spans"])
    assert result["spans_total"] == len(result["spans"])
    assert math.isclose(result["contributions_sum"], result["value"], rel_tol=1e-12, abs_tol=1e-9 * max(1.0, scale))
    assert math.isclose(math.fsum(span["contribution"] for span in result["spans"]), result["contributions_sum"],
                        rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(spans(), selections, st.integers(0, CELLS - 1))
def test_contributions_add_up_to_the_timeline_cell(frame, selection, cell):
    timeline = timeline_from_spans(frame, start=START, end=START + CELLS * STEP, step=STEP, open_end=OPEN_END)
    window = Window(START + cell * STEP, START + (cell + 1) * STEP, OPEN_END)
    cell_rows = leaves_of(timeline.filter(pl.col("timestamp") == window.start))
    result = answer(overlapping(frame.lazy(), window).collect(), cell_rows, selection=selection, window=window)
    assert_adds_up(result)


@settings(max_examples=40, deadline=None)
@given(spans(), selections, st.integers(0, CELLS * 60 - 1))
def test_contributions_add_up_to_the_instant_value(frame, selection, minute):
    at = START + dt.timedelta(minutes=minute)
    result = answer(frame, leaves_of(levels_at(frame, at)), selection=selection, window=instant(at))
    assert_adds_up(result)
    assert all(span["fraction"] == 1.0 for span in result["spans"])


def test_formula_of_a_whole_pool_is_its_level_and_idle_is_committed_minus_occupied():
    assert selection_formula(["reservable"], None).coefficients == {"reservable": 1}
    assert selection_formula(None, None).coefficients == {"total": 1}
    assert selection_formula(["reservable"], ["idle"]).text() == "committed - occupied.reservation"
