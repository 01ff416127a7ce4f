"""REJECT_REASONS is the enforced vocabulary of rejected.parquet and of the audit's clipped hours, and
docs/semantics.md lists it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from exporter.adapters import nova_hosts
from exporter.reconstruct import books
from exporter.columns import REJECT_REASONS
from exporter.errors import InvariantViolation
from exporter.reconstruct.pipeline import spans_from_tables
from tests.adapters.tables import SNAPSHOT, compute_nodes, t, tables

SEMANTICS = Path(__file__).resolve().parents[2] / "docs" / "semantics.md"


def test_every_reason_is_listed_in_the_semantics_doc():
    section = SEMANTICS.read_text().split("## Rejection reasons", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^- `([a-z_]+)`: ", section, flags=re.M)
    assert documented == list(REJECT_REASONS)


def test_a_rejection_with_an_unknown_reason_fails_the_run(monkeypatch):
    # An adapter rule that names a reason nobody declared (the bug the vocabulary exists to catch).
    rules = nova_hosts.host_evidence_rules()
    monkeypatch.setattr(nova_hosts, "host_evidence_rules", lambda: [("made_up_reason", pl.col("start").is_not_null()),
                                                                     *rules])
    nodes = compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")})
    with pytest.raises(InvariantViolation, match="made_up_reason not in REJECT_REASONS") as caught:
        spans_from_tables(tables(compute_nodes=nodes), site="s", snapshot_time=SNAPSHOT)
    assert caught.value.exit_code == 3


def test_known_reasons_pass():
    nodes = compute_nodes({"id": 1, "hypervisor_hostname": "", "created_at": t("01-01 00:00")},
                          {"id": 2, "hypervisor_hostname": "h2", "created_at": t("01-01 00:00")})
    result = spans_from_tables(tables(compute_nodes=nodes), site="s", snapshot_time=SNAPSHOT)
    assert result.rejected.get_column("rejection_reason").to_list() == ["missing_host"]


def _node_deleted_after_the_snapshot() -> dict:
    # deleted after SNAPSHOT: its span is cut there, the rest is clipped hours (after_snapshot)
    return tables(compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("12-01 00:00"),
                                               "deleted_at": t("12-31 00:00") + dt.timedelta(days=5)}))


def test_clipped_hours_with_an_unknown_reason_fail_the_run(monkeypatch):
    # A trim recorded under a reason nobody declared: the clipped books share the rejected rows' vocabulary.
    trimmed_hours = books.trimmed_hours
    monkeypatch.setattr(books, "trimmed_hours", lambda *args, **kwargs: trimmed_hours(
        *args, **{**kwargs, "reason": "made_up_clip"}))
    with pytest.raises(InvariantViolation, match="made_up_clip not in REJECT_REASONS") as caught:
        spans_from_tables(_node_deleted_after_the_snapshot(), site="s", snapshot_time=SNAPSHOT)
    assert caught.value.exit_code == 3


def test_known_clip_reasons_pass():
    result = spans_from_tables(_node_deleted_after_the_snapshot(), site="s", snapshot_time=SNAPSHOT)
    clipped = {(entry["level"], entry["reason"], entry["hours"]) for entry in result.audit["clipped"]}
    assert ("total", "after_snapshot", 5 * 24.0) in clipped
