"""The rule docs/legacy.md and docs/reports.md state for every ratio the reports print: a ratio
whose denominator is 0 (or missing) is empty (null), never inf, NaN or 0. Small frames built by
hand, expected values worked out here."""

from __future__ import annotations

import datetime as dt

import polars as pl

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
