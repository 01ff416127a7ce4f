"""End to end on generated sites: reconstruction recovers the generator's truth.

Expected node-hours per level = truth minus the losses the generator quantifies in truth.json
(hard-deleted history, dangling allocations, Blazar kills); docs/semantics.md justifies each
bound. Every quirk is also run alone: all but the lossy ones must reproduce truth exactly.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.config import SiteConfig
from exporter.db import open_engine
from exporter.extract.copy import extract_snapshot, read_tables
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot, spans_from_tables
from exporter.sitegen import generate_site
from exporter.sitegen.quirks import QUIRKS

EXACT = 1e-9  # relative: float sums of the same intervals
ROUNDED = 2e-3  # truth.json rounds each loss to 3 decimals (hours)
LOSSY = {"nova_hard_deleted", "blazar_hard_deleted", "killed_by_blazar", "maintenance_flag"}


def node_hours(spans: pl.DataFrame, snapshot) -> dict[str, float]:
    """Node-hours per level; the ondemand level (pool evidence) is checked against the pool truth
    in tests/reconstruct/test_pools.py, not here."""
    end = pl.col("end").fill_null(pl.lit(snapshot))
    hours = (end - pl.col("start")).dt.total_seconds() / 3600 * pl.col("nodes")
    return dict(spans.filter(pl.col("level") != "ondemand").group_by("level").agg(hours.sum()).iter_rows())


def generated(tmp_path, **kwargs):
    site = generate_site(f"sqlite:///{tmp_path}/site.sqlite", truth_dir=tmp_path / "truth", **kwargs)
    truth = pl.read_parquet(tmp_path / "truth" / "truth_spans.parquet")
    losses = {name: q["hours"] for name, q in json.loads((tmp_path / "truth" / "truth.json").read_text())["quirks"].items()}
    return site, truth, losses


def expected_hours(truth_hours: dict[str, float], losses: dict[str, dict]) -> dict[str, float]:
    """Truth minus the losses truth.json quantifies (0 for quirks that were off)."""
    lost = lambda quirk, key: losses.get(quirk, {}).get(key, 0.0)  # noqa: E731
    return {
        "total": truth_hours.get("total", 0.0) - lost("nova_hard_deleted", "lost_total_node_hours"),
        "reservable": truth_hours.get("reservable", 0.0) - lost("blazar_hard_deleted", "lost_reservable_node_hours"),
        "committed": truth_hours.get("committed", 0.0) - lost("blazar_hard_deleted", "lost_committed_node_hours"),
        "maintenance": truth_hours.get("maintenance", 0.0) - lost("blazar_hard_deleted", "lost_maintenance_node_hours")
        - lost("maintenance_flag", "lost_mask_node_hours"),  # flag-down time before the audit triggers
        "occupied": truth_hours.get("occupied", 0.0) - lost("blazar_hard_deleted", "orphaned_occupied_node_hours")
        - lost("killed_by_blazar", "lost_occupied_node_hours"),
    }


def assert_recovers_truth(rec_hours, truth_hours, losses):
    expected = expected_hours(truth_hours, losses)
    for level in ("total", "reservable", "committed", "maintenance"):
        assert rec_hours.get(level, 0.0) == pytest.approx(expected[level], rel=EXACT, abs=ROUNDED), level
    # An instance can be both killed late and orphaned: the two losses overlap by at most the
    # smaller one, so reconstruction may lose up to that much less than their sum.
    overlap = min(losses.get("killed_by_blazar", {}).get("lost_occupied_node_hours", 0.0),
                  losses.get("blazar_hard_deleted", {}).get("orphaned_occupied_node_hours", 0.0))
    assert expected["occupied"] - ROUNDED <= rec_hours.get("occupied", 0.0) <= expected["occupied"] + overlap + ROUNDED
    # Stopped spans are sub-spans of occupied ones and lose what their instance loses: at most
    # twice occupied's relative loss (small samples), never more than truth.
    occupied_loss = 1 - rec_hours.get("occupied", 0.0) / truth_hours["occupied"]
    stopped_truth = truth_hours.get("stopped", 0.0)
    assert stopped_truth * (1 - 2 * occupied_loss) - 1e-6 <= rec_hours.get("stopped", 0.0) <= stopped_truth + 1e-6


def test_baremetal_site_with_every_quirk_recovers_truth_through_extract(tmp_path):
    site, truth, losses = generated(tmp_path, hosts=20, years=2, seed=3)
    snapshot = extract_snapshot(SiteConfig(name="gen", display_name="gen", db_url=site.url, databases=site.databases),
                                tmp_path / "snapshots").snapshot_dir
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="gen", start=site.start, snapshot_time=site.end))
    rec_hours, truth_hours = node_hours(rec.spans, site.end), node_hours(truth, site.end)
    assert_recovers_truth(rec_hours, truth_hours, losses)
    assert sum(losses["blazar_hard_deleted"].values()) + losses["nova_hard_deleted"]["lost_total_node_hours"] > 0
    reasons = set(rec.rejected["rejection_reason"])
    assert {"never_launched", "missing_fk", "null_start", "invalid_time_range", "orphan"} <= reasons
    kinds = rec.audit["hypervisors"]  # ironic nodes: the site is bare metal because its hosts are
    assert kinds["site"] == "ironic" and kinds["kvm_hosts"] == 0 and kinds["ironic_hosts"] >= 20


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_each_quirk_alone_is_handled(tmp_path, quirk):
    site, truth, losses = generated(tmp_path, hosts=10, years=1.5, seed=5, quirks={quirk})
    tables = {name: read.frame for name, read in read_tables(open_engine(site.url, databases=site.databases),
                                                               _sources()).items() if read.frame is not None}
    result = spans_from_tables(tables, site="gen", snapshot_time=site.end)
    rec_hours, truth_hours = node_hours(result.spans, site.end), node_hours(truth, site.end)
    if quirk in LOSSY:
        assert_recovers_truth(rec_hours, truth_hours, losses)
    else:
        assert set(rec_hours) == set(truth_hours)
        for level, hours in truth_hours.items():
            assert rec_hours[level] == pytest.approx(hours, rel=EXACT), level


@pytest.mark.parametrize("schema", ["capability_name", "capability_id", "property_id"])
def test_node_type_and_gpus_match_truth_in_every_capability_schema(tmp_path, schema):
    site, truth, _ = generated(tmp_path, hosts=8, years=0.5, seed=2, quirks=set(), capability_schema=schema)
    tables = {name: read.frame for name, read in read_tables(open_engine(site.url, databases=site.databases),
                                                               _sources()).items() if read.frame is not None}
    spans = spans_from_tables(tables, site="gen", snapshot_time=site.end).spans
    per_host = lambda s: sorted(s.filter(pl.col("level") == "total")  # noqa: E731
                                .select("hypervisor_hostname", "node_type", "gpus", "vcpus").unique().rows())
    assert per_host(spans) == per_host(truth)


def _sources():
    from exporter.adapters.registry import declared_tables

    return declared_tables()


def resource_hours(spans: pl.DataFrame, snapshot, column: str) -> dict[str, float]:
    end = pl.col("end").fill_null(pl.lit(snapshot))
    return dict(spans.filter(pl.col("level") != "ondemand").group_by("level").agg(((end - pl.col("start")).dt.total_seconds() / 3600 * pl.col(column))
                                            .sum()).iter_rows())


def test_kvm_site_recovers_node_vcpu_and_memory_hours_exactly(tmp_path):
    # every quirk that loses nothing, the KVM lifecycles included (after Rocky, when event hosts
    # name every placement): occupied spans per placement and reservation slots must reproduce
    # truth's resource-hours, not just node-hours
    site, truth, _ = generated(tmp_path, hosts=6, years=1, seed=3, kind="kvm", start=dt.datetime(2019, 1, 1),
                                quirks=set(QUIRKS) - LOSSY)
    tables = {name: read.frame for name, read in read_tables(open_engine(site.url, databases=site.databases),
                                                               _sources()).items() if read.frame is not None}
    spans = spans_from_tables(tables, site="gen", snapshot_time=site.end).spans
    spans = spans.filter(pl.col("level") != "conflict")  # records of duplicate rows: not in truth_spans
    for column in ("nodes", "vcpus", "memory_mb", "disk_gb"):
        rec, true = resource_hours(spans, site.end, column), resource_hours(truth, site.end, column)
        assert set(rec) == set(true)
        for level, hours in true.items():
            assert rec[level] == pytest.approx(hours, rel=EXACT), (column, level)
    assert 0 < spans.filter(pl.col("level") == "occupied")["nodes"].max() < 1
