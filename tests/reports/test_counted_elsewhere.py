"""Hours another row or source counts (columns.COUNTED_ELSEWHERE) are set aside, never lost and
never dropped: coverage puts every booked hour in exactly one column, and legacy's evidence of
missing hours ignores them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl

from exporter.columns import COUNTED_ELSEWHERE, REJECT_REASONS
from exporter.reports.coverage import LONG_SCHEMA, coverage_summary
from exporter.reports.legacy import evidence

SEMANTICS = Path(__file__).resolve().parents[2] / "docs" / "semantics.md"


def _entry(kind: str, hours: float, reason: str | None = None) -> dict:
    return {"site": "s", "year": 2025, "level": "maintenance", "kind": kind, "source_table": "t", "reason": reason,
            "rows": 1, "hours": hours}


def test_every_booked_hour_is_in_exactly_one_column_whatever_its_kind_and_reason():
    # one entry per (kind, reason), each a distinct power of two: an entry dropped or counted twice
    # changes the total
    entries = [_entry("counted", 1.0), _entry("unknown", 2.0)]
    entries += [_entry(kind, 2.0 ** (2 + i), reason)
                for i, (kind, reason) in enumerate((k, r) for k in ("clipped", "rejected") for r in REJECT_REASONS)]
    row = coverage_summary(pl.DataFrame(entries, schema=LONG_SCHEMA)).row(0, named=True)
    booked = sum(e["hours"] for e in entries if e["kind"] != "unknown")
    assert row["counted"] + row["clipped"] + row["rejected"] + row["counted_elsewhere"] == booked
    assert row["unknown"] == 2.0


def test_a_clipped_hour_under_a_lease_is_counted_elsewhere_not_clipped_and_not_dropped():
    long = pl.DataFrame([_entry("counted", 8.0), _entry("clipped", 1.0, "under_commitment"),
                         _entry("clipped", 2.0, "after_snapshot"), _entry("rejected", 4.0, "duplicate_entity"),
                         _entry("rejected", 16.0, "orphan")], schema=LONG_SCHEMA)
    row = coverage_summary(long).row(0, named=True)
    assert (row["counted"], row["clipped"], row["rejected"], row["counted_elsewhere"]) == (8.0, 2.0, 16.0, 5.0)
    assert row["counted_share"] == 8.0 / (8.0 + 2.0 + 16.0)


def test_a_mask_kept_by_the_lease_is_no_evidence_of_missing_maintenance_hours():
    def rejected(day: int, reason: str) -> dict:
        start = dt.datetime(2025, 3, day, 1, tzinfo=dt.timezone.utc)
        return {"level": "maintenance", "rejection_reason": reason, "hours": 5.0, "start": start,
                "end": start + dt.timedelta(hours=5)}
    rows = pl.DataFrame([rejected(1, "under_commitment"), rejected(2, "reservable_pool"), rejected(3, "orphan")])
    no_leaves = pl.DataFrame(schema={"date": pl.Date, "node_type": pl.String, "pool": pl.String,
                                     "state": pl.String, "hours": pl.Float64})
    found = evidence(rows, no_leaves).filter(pl.col("level") == "maintenance")
    assert found["date"].to_list() == [dt.date(2025, 3, 3)]


def test_the_counted_elsewhere_reasons_are_reasons_and_the_docs_name_exactly_them():
    section = SEMANTICS.read_text().split("### Counted elsewhere", 1)[1].split("\n#", 1)[0]
    paragraph = section.split("Their hours are not lost", 1)[0]
    named = re.findall(r"`([a-z_]+)` \(", paragraph)
    assert set(COUNTED_ELSEWHERE) <= set(REJECT_REASONS)
    assert named == list(COUNTED_ELSEWHERE)
