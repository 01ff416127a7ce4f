"""The rule docs/legacy.md and docs/reports.md state for every ratio the reports print: a ratio
whose denominator is 0 (or missing) is empty (null), never inf, NaN or 0. Small frames built by
hand, expected values worked out here."""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.reports.coverage import LONG_SCHEMA, coverage_summary
from exporter.reports.kpi import kpi_table
from exporter.reports.legacy import compare, summary

DAY = dt.date(2025, 3, 1)


def _legacy(rows: list[tuple[str, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame([{"site": "s", "date": DAY, "node_type": t, "level": level, "legacy_hours": hours}
                         for t, level, hours in rows],
                        schema={"site": pl.String, "date": pl.Date, "node_type": pl.String, "level": pl.String,
                                "legacy_hours": pl.Float64})


def _rebuilt(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame([{"site": "s", "date": DAY, "node_type": t, "level": level, "reconstructed_hours": hours}
                         for t, level, hours in rows],
                        schema={"site": pl.String, "date": pl.Date, "node_type": pl.String, "level": pl.String,
                                "reconstructed_hours": pl.Float64})


def test_legacy_summary_relative_difference_is_empty_when_the_legacy_sum_is_zero():
    legacy = _legacy([("a", "total", 24.0), ("b", "total", 24.0),
                      ("a", "maintenance", 0.0), ("b", "maintenance", 0.0),
                      ("a", "idle", 0.0)])
    rebuilt = _rebuilt([("a", "total", 24.0), ("b", "total", 36.0),
                        ("a", "maintenance", 3.0), ("b", "maintenance", 0.0),
                        ("a", "idle", 0.0),
                        ("a", "committed", 5.0)])  # no legacy row at all for committed
    no_evidence = pl.DataFrame(schema={"date": pl.Date, "level": pl.String})
    comparison = compare(legacy, rebuilt, no_evidence)
    by_row = {(r["node_type"], r["level"]): r["relative_difference"] for r in comparison.iter_rows(named=True)}
    assert by_row[("a", "maintenance")] is None and by_row[("a", "committed")] is None
    assert by_row[("b", "total")] == 0.5  # (36 - 24) / 24

    by_level = {r["level"]: r for r in summary(comparison).iter_rows(named=True)}
    assert by_level["total"]["relative_difference"] == 0.25  # (60 - 48) / 48
    assert by_level["maintenance"]["reconstructed_hours"] == 3.0
    for level in ("maintenance", "committed", "idle"):  # legacy sums 0 (or nothing): 3/0, 5/0, 0/0
        assert by_level[level]["relative_difference"] is None, level


def _timeline(leaves: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    """A whole day of hourly node rows: (node_type, pool, state, value) repeated every hour."""
    start = dt.datetime(2025, 3, 1)
    return pl.DataFrame([{"site": "s", "timestamp": start + dt.timedelta(hours=h), "node_type": t, "resource": "nodes",
                          "pool": pool, "state": state, "value": value}
                         for h in range(24) for t, pool, state, value in leaves])


def test_kpi_ratios_are_empty_when_their_denominator_level_has_no_hours():
    timeline = _timeline([("r", "reservable", "active", 2.0), ("r", "reservable", "available", 2.0),
                          ("o", "ondemand", "available", 1.0),  # no reservable hours: no utilization
                          ("z", "ondemand", "available", 0.0)])  # no hours at all: no ratio
    rows = {r["node_type"]: r for r in kpi_table(timeline, period="day", step_seconds=3600).iter_rows(named=True)}
    assert (rows["r"]["utilization"], rows["r"]["occupied_share"], rows["r"]["active_share"]) == (0.5, 0.5, 0.5)
    assert rows["o"]["utilization"] is None
    assert (rows["o"]["occupied_share"], rows["o"]["active_share"]) == (0.0, 0.0)  # 0 of 24 total hours: 0, not empty
    assert (rows["z"]["utilization"], rows["z"]["occupied_share"], rows["z"]["active_share"]) == (None, None, None)


def test_coverage_counted_share_is_empty_when_nothing_was_counted_clipped_or_rejected():
    def entry(level: str, kind: str, hours: float, reason: str | None = None) -> dict:
        return {"site": "s", "year": 2025, "level": level, "kind": kind, "source_table": "t", "reason": reason,
                "rows": 1, "hours": hours}
    long = pl.DataFrame([entry("committed", "counted", 3.0), entry("committed", "rejected", 1.0, "orphan"),
                         entry("maintenance", "unknown", 5.0),  # unknown hours are not booked
                         entry("idle", "rejected", 2.0, "duplicate_entity")],  # counted elsewhere: not booked
                        schema=LONG_SCHEMA)
    share = {r["level"]: r["counted_share"] for r in coverage_summary(long).iter_rows(named=True)}
    assert share == {"committed": 0.75, "maintenance": None, "idle": None}  # 3 / (3 + 0 + 1)
