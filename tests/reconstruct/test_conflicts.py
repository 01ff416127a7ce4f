"""Duplicate Blazar host rows become conflict_exclusion spans naming both rows; nothing is deduplicated silently."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.adapters.registry import declared_tables
from exporter.db import open_engine
from exporter.extract.copy import read_tables
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.sitegen import generate_site
from tests.adapters.tables import SNAPSHOT, compute_nodes, computehosts, t, tables


def site() -> dict[str, pl.DataFrame]:
    rows = [("h1", "7", "01-01", None), ("h1", "8", "03-01", "04-01"),  # a second row inside a live one
            ("h2", "20", "01-01", "07-01"), ("h2", "21", "06-01", None),  # enrolments overlapping a month
            ("h3", "30", "01-01", "03-01"), ("h3", "31", "02-01", "05-01"), ("h3", "32", "02-15", "04-01"),
            ("h4", "40", "01-01", None), ("h4", "41", "05-01", None)]  # both still open at the snapshot
    return tables(
        compute_nodes=compute_nodes(*({"id": i, "hypervisor_hostname": f"h{i}", "created_at": t("01-01 00:00")}
                                      for i in range(1, 5))),
        computehosts=computehosts(*({"id": row_id, "hypervisor_hostname": host, "created_at": t(f"{start} 00:00"),
                                     "deleted_at": t(f"{end} 00:00") if end else None}
                                    for host, row_id, start, end in rows)))


def test_each_lost_piece_is_a_conflict_span_against_the_row_that_keeps_it():
    result = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT)
    conflict = result.spans.filter(pl.col("level") == "conflict")
    got = sorted(conflict.select("hypervisor_hostname", "source_id", "counterpart_id", "start", "end").rows())
    assert got == [
        ("h1", "8", "7", t("03-01 00:00"), t("04-01 00:00")),
        ("h2", "21", "20", t("06-01 00:00"), t("07-01 00:00")),
        ("h3", "31", "30", t("02-01 00:00"), t("03-01 00:00")),
        ("h3", "32", "30", t("02-15 00:00"), t("03-01 00:00")),  # the lost row is split by who holds the time
        ("h3", "32", "31", t("03-01 00:00"), t("04-01 00:00")),
        ("h4", "41", "40", t("05-01 00:00"), None),  # still in conflict at the snapshot
    ]
    assert set(conflict.select("span_type", "evidence", "confidence").rows()) == \
        {("conflict_exclusion", "blazar_computehost", "direct")}
    assert conflict.get_column("nodes").to_list() == [1.0] * 6  # the whole host each row would count


def test_the_audit_counts_conflict_hours_per_host_equal_to_the_duplicate_hours():
    audit = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT).audit["conflicts"]
    # 2020: March 31 days, June 30, Feb 1..Mar 1 29 days, Feb 15..Apr 1 46 days, May 1..Dec 31 244 days
    assert audit["hours_by_host"] == pytest.approx({"h1": 31 * 24.0, "h2": 30 * 24.0, "h3": (29 + 46) * 24.0,
                                                    "h4": 244 * 24.0})
    assert audit["hours"] == pytest.approx(audit["duplicate_entity_hours"])
    assert audit["spans"] == 6


def test_conflicts_feed_no_series_the_reservable_time_counts_once():
    result = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT)
    reservable = result.spans.filter(pl.col("level") == "reservable")
    union_hours = {"h1": 365 * 24.0, "h2": 365 * 24.0, "h3": (31 + 29 + 31 + 30) * 24.0, "h4": 365 * 24.0}
    assert dict(reservable.group_by("hypervisor_hostname").agg(pl.col("hours").sum()).rows()) == \
        pytest.approx(union_hours)
    # the source accounting balances without the conflict records (they come from no input row)
    assert not [e for e in result.audit["sources"] if e["level"] == "conflict"]


def test_a_generated_sites_duplicate_rows_are_exactly_its_conflict_spans(tmp_path):
    site = generate_site(f"sqlite:///{tmp_path}/site.sqlite", hosts=16, years=1.0, seed=4, truth_dir=tmp_path / "truth",
                         quirks={"duplicate_blazar_hosts"})
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())["conflicts"]
    assert truth["rows"]  # the seed has duplicate Blazar host rows
    read = read_tables(open_engine(site.url, databases=site.databases), declared_tables())
    tables = {name: table.frame for name, table in read.items() if table.frame is not None}
    result = spans_from_tables(tables, site="g", snapshot_time=site.end)
    conflict = result.spans.filter(pl.col("level") == "conflict")
    when = lambda text: None if text is None else dt.datetime.fromisoformat(text)  # noqa: E731
    assert sorted(conflict.select("hypervisor_hostname", "source_id", "counterpart_id", "start", "end").rows()) == \
        sorted((r["hypervisor_hostname"], r["row_id"], r["kept_row_id"], when(r["start"]), when(r["end"]))
               for r in truth["rows"])
    assert result.audit["conflicts"]["hours_by_host"] == pytest.approx(truth["hours_by_host"])

