"""The host spine on a generated KVM site: compute_nodes and nova-compute services evidence exactly
the host-hours the truth says the data can show; orphan services are reported; the live exporter
counts disabled hosts per node type as the truth does."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.live.source import LiveSite
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot
from exporter.sitegen import generate_site

START = dt.datetime(2016, 1, 1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("host-spine")
    site = generate_site(f"sqlite:///{root}/site.sqlite", hosts=12, years=1.0, seed=3, kind="kvm", start=START,
                         truth_dir=root / "truth")
    config = SiteConfig(name="k", display_name="k", db_url=site.url, databases=site.databases, history_start=START)
    snapshot = extract_snapshot(config, root / "snapshots", snapshot_id="s").snapshot_dir
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="k", start=START, snapshot_time=site.end))
    return site, config, rec, json.loads((root / "truth" / "truth.json").read_text())


def test_total_host_hours_are_the_hours_the_truth_says_the_data_evidences(built):
    site, _, rec, _ = built
    pools = pl.read_parquet(site.truth_dir / "truth_pools.parquet")
    hours = (pl.col("end") - pl.col("start")).dt.total_seconds() / 3600
    evidenced = dict(pools.filter(pl.col("evidence") != "absent").group_by("hypervisor_hostname")
                     .agg(hours.sum()).rows())
    total = rec.spans.filter(pl.col("level") == "total")
    got = dict(total.group_by("hypervisor_hostname").agg(pl.col("hours").sum()).rows())
    assert got == pytest.approx(evidenced, abs=1e-6)
    # the services fill the time of compute node rows the site purged
    assert total.filter(pl.col("source_table") == "nova.services").get_column("hours").sum() > 0


def test_orphan_services_are_in_the_audit_and_no_host_is_invented(built):
    _, _, rec, truth = built
    assert rec.audit["services"]["orphan_hosts"] == truth["services"]["orphan_service_hosts"]
    hosts = set(rec.spans.get_column("hypervisor_hostname"))
    assert not hosts & set(truth["services"]["orphan_service_hosts"])


def test_live_disabled_hosts_per_node_type_match_the_truth(built):
    site, config, _, truth = built
    live = LiveSite(config)
    try:
        usage = live(site.end)
    finally:
        live.close()
    # The truth knows each host's real node type; the exporter labels a host Blazar never knew
    # "unknown", like every other series of it, so the counts are compared summed.
    expected = sum(truth["services"]["disabled_hosts_by_node_type"].values())
    assert expected  # the generator disables some
    assert usage.disabled.get_column("value").sum() == expected
    assert set(usage.disabled.get_column("node_type")) == set(usage.gauges.get_column("node_type"))
