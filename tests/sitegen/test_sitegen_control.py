"""Generator: the control plane (nova.services, the Blazar host flag and its audit history) and
the pool truth, read back from the written tables so the render and the truth are checked
against each other."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.db import open_engine
from exporter.sitegen import generate_site
from exporter.sitegen.model import AUDIT_SINCE, to_dt


def read(site, table: str) -> pl.DataFrame:
    engine = open_engine(site.url, databases=site.databases)
    try:
        with engine.connect() as conn:
            return pl.read_database(f"SELECT * FROM {table}", conn, infer_schema_length=None)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def kvm_site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kvm")
    site = generate_site(f"sqlite:///{directory}/main.sqlite", hosts=20, years=1.5, seed=4, kind="kvm",
                         start=dt.datetime(2024, 6, 1))
    return site, json.loads((site.truth_dir / "truth.json").read_text())


@pytest.fixture(scope="module")
def baremetal_site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bm")
    site = generate_site(f"sqlite:///{directory}/main.sqlite", hosts=30, years=5, seed=2,
                         start=dt.datetime(2021, 1, 1))
    return site, json.loads((site.truth_dir / "truth.json").read_text())


def test_kvm_services_front_one_hypervisor_each(kvm_site):
    site, truth = kvm_site
    services = read(site, "nova.services").filter(pl.col("binary") == "nova-compute")
    nodes = read(site, "nova.compute_nodes")
    # every compute node names a service row of its own host
    joined = nodes.join(services, left_on="service_id", right_on="id", suffix="_service")
    assert joined.height == nodes.height and (joined["host"] == joined["host_service"]).all()
    orphans = set(services["host"]) - set(nodes["host"])
    assert orphans == set(truth["services"]["orphan_service_hosts"]) == {"compute-spare-01"}
    # disabled live services, counted per node type through their hypervisor's capabilities
    live = services.filter(pl.col("deleted") == 0, pl.col("disabled") == 1, ~pl.col("host").is_in(list(orphans)))
    assert live.height == sum(truth["services"]["disabled_hosts_by_node_type"].values()) > 0


def test_flag_down_now_is_the_current_value_and_its_history_is_audited(baremetal_site):
    site, truth = baremetal_site
    hosts = read(site, "blazar.computehosts")
    audit = read(site, "openstack_audit.audit_blazar_computehosts")
    flags = audit.with_columns(pl.col("data").str.json_path_match("$.reservable").cast(pl.Int64).alias("flag"))
    assert truth["quirks"]["maintenance_flag"]["count"] > 0
    # triggers fire only from their deployment; older rows are backfill written then
    after = flags.filter(pl.col("audit_changed_by") != "backfill")
    stamp = lambda column: pl.col(column).cast(pl.String).str.slice(0, 19)  # noqa: E731
    deployed = str(to_dt(AUDIT_SINCE))
    assert after.select(stamp("audit_changed_at").min()).item() >= deployed
    assert set(flags.filter(pl.col("audit_changed_by") == "backfill").select(stamp("audit_changed_at")).to_series()) \
        == {deployed}
    updates = after.filter(pl.col("audit_event_type") == "UPDATE")
    assert set(updates["flag"]) == {0, 1}
    # a row whose last audited value is 0 is the row whose current value is 0 (one history)
    last = flags.sort("audit_id").group_by("id").agg(pl.col("flag").last())
    current = hosts.select("id", pl.col("reservable").cast(pl.Int64))
    both = last.join(current, on="id")
    assert both.height > 0 and (both["flag"] == both["reservable"]).all()


def test_pool_truth_partitions_the_true_host_hours(baremetal_site):
    site, truth = baremetal_site
    pools = truth["pools"]
    total = sum(h for by_evidence in pools.values() for h in by_evidence.values())
    assert total == pytest.approx(truth["node_hours"]["total"], abs=0.01)
    assert sum(pools["reservable"].values()) == pytest.approx(truth["node_hours"]["reservable"], abs=0.01)
    # a real on-demand pool the data decides, and hard-deleted history it cannot
    assert pools["ondemand"]["ondemand"] > 0
    assert pools["reservable"].get("unknown", 0) + pools["ondemand"].get("unknown", 0) > 0
    assert "ondemand" not in pools["reservable"]
    # Blazar's history is evidently complete from its earliest soft-deleted host row
    hosts = read(site, "blazar.computehosts")
    earliest = hosts["deleted_at"].drop_nulls().cast(pl.String).min()
    assert earliest[:19] == str(truth["blazar_history"]["evident_since"])[:19]
    assert earliest >= str(truth["blazar_history"]["soft_delete_since"])


def test_truth_pools_parquet_sums_to_truth_json(baremetal_site):
    site, truth = baremetal_site
    frame = pl.read_parquet(site.truth_dir / "truth_pools.parquet")
    hours = frame.group_by("pool", "evidence").agg(
        ((pl.col("end") - pl.col("start")).dt.total_seconds().sum() / 3600).alias("h"))
    for pool, evidence, value in hours.iter_rows():
        assert value == pytest.approx(truth["pools"][pool][evidence], abs=0.01)
