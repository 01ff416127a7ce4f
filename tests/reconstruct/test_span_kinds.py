"""Every span carries span_type, evidence, confidence and hours; the vocabularies are enforced and documented."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from exporter.adapters.registry import span_tables
from exporter.columns import CONFIDENCES, EVIDENCE_KINDS, SPAN_TYPES
from exporter.errors import InvariantViolation
from exporter.reconstruct import span_kinds
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.reconstruct.inference import SOURCE as INFERENCE_SOURCE
from exporter.reconstruct.rulesfile import RULES_SOURCE, parse_rules
from tests.adapters.tables import (
    SNAPSHOT, allocations, compute_nodes, computehosts, instances, leases, request_specs, reservations, spec, t,
    tables,
)

SEMANTICS = Path(__file__).resolve().parents[2] / "docs" / "semantics.md"
RULES = """rules:
  - id: spare-rack
    site: s
    match: {hypervisor_hostname: h9}
    from: 2020-06-01
    action: add_host
    node_type: spare
    confidence: assumed
    provenance: {author: ops, date: 2020-06-02, reason: racked but never enrolled}
"""


def site() -> dict[str, pl.DataFrame]:
    return tables(
        compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                                    {"id": 2, "hypervisor_hostname": "h9", "created_at": t("01-01 00:00"),
                                     "deleted_at": t("02-01 00:00")}),
        # h3 exists only in Blazar: its existence is inferred from the enrolment
        computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                                  {"id": "8", "hypervisor_hostname": "h3", "created_at": t("12-01 00:00")}),
        leases=leases({"id": "L1", "start_date": t("03-01 00:00"), "end_date": t("03-05 00:00")}),
        reservations=reservations({"id": "R1", "lease_id": "L1"}),
        computehost_allocations=allocations({"id": "A1", "compute_host_id": "7", "reservation_id": "R1",
                                             "created_at": t("02-20 00:00")}),
        instances=instances({"id": 1, "uuid": "i1", "node": "h1", "created_at": t("03-01 01:00"),
                             "launched_at": t("03-01 01:20"), "terminated_at": t("03-02 00:00")}),
        request_specs=request_specs({"instance_uuid": "i1", "spec": spec(hint="R1")}),
    )


def kinds(spans: pl.DataFrame) -> set[tuple]:
    return set(spans.select("level", "source_table", "span_type", "evidence", "confidence").rows())


def test_every_span_has_its_kind_evidence_and_confidence():
    spans = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT, rules=parse_rules(RULES)).spans
    assert kinds(spans) == {
        ("total", "nova.compute_nodes", "nova_host", "nova_compute_node", "direct"),
        ("total", "blazar.computehosts", "nova_host", "blazar_computehost", "inferred"),
        ("total", "rules", "rule_host", "manual_rule", "assumed"),  # the rule's own confidence
        ("reservable", "blazar.computehosts", "blazar_host", "blazar_computehost", "direct"),
        ("committed", "blazar.computehost_allocations", "blazar_allocation", "blazar_allocation", "direct"),
        ("occupied", "nova.instances", "nova_instance_occupied", "nova_instance", "direct"),
    }


def test_hours_are_each_spans_length_with_an_open_end_at_the_snapshot():
    spans = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT).spans
    by_source = {row["source_id"]: row["hours"] for row in spans.filter(pl.col("level") == "total").to_dicts()}
    # 2020 is a leap year: 01-01 .. 12-31 is 365 days; h9 lived January; h3 Dec 1 .. Dec 31
    assert by_source == {"1": 365 * 24.0, "2": 31 * 24.0, "8": 30 * 24.0}
    occupied = spans.filter(pl.col("level") == "occupied")
    assert occupied.get_column("hours").to_list() == pytest.approx([23.0])  # created_at .. terminated_at


def test_span_hours_are_the_audits_counted_hours():
    result = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT)
    summed = {(row["level"], row["source_table"]): row["hours"] for row in
              result.spans.group_by("level", "source_table").agg(pl.col("hours").sum()).to_dicts()}
    counted = {(row["level"], row["source_table"]): row["hours_counted"] for row in result.audit["sources"]
               if row["rows_used"]}
    assert summed == pytest.approx(counted)


def test_inferred_commitments_are_inferred_spans():
    frames = site()
    frames["blazar.computehost_allocations"] = frames["blazar.computehost_allocations"].clear()
    spans = spans_from_tables(frames, site="s", snapshot_time=SNAPSHOT, inference="on").spans
    assert ("committed", "inference", "inferred_allocation", "reserved_instances", "inferred") in kinds(spans)


def test_a_span_outside_the_vocabulary_fails_the_run():
    spans = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT).spans
    with pytest.raises(InvariantViolation, match="span_type"):
        span_kinds.check_kinds(spans.with_columns(pl.lit("made_up").alias("span_type")))
    with pytest.raises(InvariantViolation, match="confidence"):
        span_kinds.check_kinds(spans.with_columns(pl.lit(None, dtype=pl.String).alias("confidence")))


def _documented(heading: str) -> list[str]:
    section = SEMANTICS.read_text().split(heading, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_the_vocabularies_are_documented():
    assert _documented("### span_type") == list(SPAN_TYPES)
    assert _documented("### evidence") == list(EVIDENCE_KINDS)
    assert _documented("### confidence") == list(CONFIDENCES)


def test_every_table_with_an_evidence_kind_feeds_spans():
    # An archive-only table (nova_cell0.instances, the audit trail) never creates a span, so an
    # evidence kind for it would be dead vocabulary.
    feeding = {source.name for source in span_tables()} | {RULES_SOURCE, INFERENCE_SOURCE}
    assert set(span_kinds.EVIDENCE_OF_TABLE) <= feeding
