"""explain groups conflict_exclusion spans under the ``conflict`` anomaly, with both rows; they add nothing."""

from __future__ import annotations

import polars as pl
import pytest

from exporter.explain import overlapping
from exporter.explain.answer import Selection, answer
from exporter.explain.cell import Window
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.reconstruct.timeline import timeline_from_spans
from tests.adapters.tables import SNAPSHOT, t
from tests.reconstruct.test_conflicts import site


def test_explain_lists_the_conflict_spans_of_a_cell_under_conflict():
    result = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT)
    window = Window(t("03-10 00:00"), t("03-10 01:00"), SNAPSHOT)
    timeline = timeline_from_spans(result.spans, start=window.start, end=window.end, step=window.end - window.start,
                                   open_end=SNAPSHOT)
    leaves = timeline.select(pl.col("node_type", "pool", "state", "resource").cast(pl.String), "value")
    answer_ = answer(overlapping(result.spans.lazy(), window).collect(), leaves, selection=Selection(), window=window)
    conflict = answer_["anomalies"]["conflict"]
    # on 03-10: h1's second row (8 against 7) and h3's third row (32 against 31)
    assert [(item["hostname"], item["source_id"], item["counterpart_id"], item["span_type"], item["fraction"])
            for item in conflict["items"]] == [("h1", "8", "7", "conflict_exclusion", 1.0),
                                               ("h3", "32", "31", "conflict_exclusion", 1.0)]
    assert conflict["count"] == 2
    assert answer_["contributions_sum"] == pytest.approx(answer_["value"])  # they add nothing to the value
    assert all(span["level"] != "conflict" for span in answer_["spans"])
