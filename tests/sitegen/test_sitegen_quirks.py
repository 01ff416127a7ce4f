"""Each quirk switch changes exactly what it says: the rows it shapes, and truth.json's count."""

from __future__ import annotations

import json

import polars as pl
import pytest
import sqlalchemy as sa

from exporter.cli import main
from exporter.db import open_engine
from exporter.errors import ConfigError
from exporter.sitegen import QUIRKS, generate_site
from exporter.sitegen.quirks import KVM_ONLY
from exporter.sitegen.schema import CAPABILITY_SCHEMAS

# 2016-2020 crosses every cut-off the render quirks use (2018 purge, 2019 Stein; 2022 purge covers all)
PARAMS = dict(hosts=40, years=4, seed=11)

# quirk -> SQL counting the rows the quirk produces (0 when it is off)
EVIDENCE = {
    "ironic_zero_inventory": "SELECT count(*) FROM nova.compute_nodes WHERE vcpus = 0",
    "late_deleted_at": "SELECT count(*) FROM nova.instances WHERE terminated_at IS NULL AND deleted_at IS NOT NULL",
    "never_launched": "SELECT count(*) FROM nova.instances WHERE launched_at IS NULL",
    "maintenance_leases": "SELECT count(*) FROM blazar.leases WHERE project_id = 'maintenance'",
    "early_deleted_leases": "SELECT count(*) FROM blazar.leases WHERE status = 'DELETING'",
    "failed_actions": "SELECT count(*) FROM nova.instance_actions_events WHERE result = 'Error' "
                      "AND event = 'compute_stop_instance'",
    "stop_start": "SELECT count(*) FROM nova.instance_actions WHERE action = 'stop' AND message IS NULL",
    "broken_rows": "SELECT count(*) FROM nova.instances WHERE created_at IS NULL OR terminated_at < created_at",
    "advance_bookings": "SELECT count(*) FROM blazar.leases WHERE start_date > created_at + 0.05",
    "duplicate_blazar_hosts": "SELECT count(*) - count(DISTINCT hypervisor_hostname) FROM blazar.computehosts",
}


def _site(root, quirks):
    site = generate_site(f"sqlite:///{root}/main.sqlite", quirks=quirks, **PARAMS)
    return site, json.loads((site.truth_dir / "truth.json").read_text())


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    on = _site(tmp_path_factory.mktemp("on"), None)
    off = _site(tmp_path_factory.mktemp("off"), set())
    return on, off


def _count(site, sql: str) -> int:
    engine = open_engine(site.url)
    with engine.connect() as conn:
        if "created_at + 0.05" in sql:  # advance bookings: start more than an hour after creation
            sql = ("SELECT count(*) FROM blazar.leases "
                   "WHERE julianday(start_date) - julianday(created_at) > 1.0 / 24")
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


@pytest.mark.parametrize("quirk", sorted(EVIDENCE))
def test_quirk_rows_appear_only_when_on(sites, quirk):
    (on, _), (off, _) = sites
    assert _count(on, EVIDENCE[quirk]) > 0
    assert _count(off, EVIDENCE[quirk]) == 0


def test_truth_json_counts_follow_the_switches(sites):
    (_, on), (_, off) = sites
    assert set(on["quirks"]) == set(QUIRKS)
    for name in QUIRKS:
        assert on["quirks"][name]["enabled"] and not off["quirks"][name]["enabled"]
        assert off["quirks"][name]["count"] == 0, name
        if name not in KVM_ONLY:  # these sites are bare metal
            assert on["quirks"][name]["count"] > 0, name


def test_hard_deletion_removes_history_but_not_truth(sites):
    (on_site, on), (off_site, off) = sites
    # all quirks off: every enrolment has its compute_nodes and computehosts row
    total_on = pl.read_parquet(on_site.truth_dir / "truth_spans.parquet").filter(level="total").height
    assert _count(on_site, "SELECT count(*) FROM nova.compute_nodes") < total_on
    assert on["quirks"]["nova_hard_deleted"]["hours"]["lost_total_node_hours"] > 0
    assert on["quirks"]["blazar_hard_deleted"]["hours"]["lost_reservable_node_hours"] > 0
    total_off = pl.read_parquet(off_site.truth_dir / "truth_spans.parquet").filter(level="total").height
    assert _count(off_site, "SELECT count(*) FROM nova.compute_nodes") == total_off


def test_killed_instances_outlive_their_allocation_in_truth(sites):
    (on_site, on), _ = sites
    spans = pl.read_parquet(on_site.truth_dir / "truth_spans.parquet")
    committed = spans.filter(pl.col("level").is_in(["committed", "maintenance"])).select(
        "reservation_id", "hypervisor_hostname", c_end=pl.col("end"))
    occupied = spans.filter(level="occupied", booking="reservation").join(
        committed, on=["reservation_id", "hypervisor_hostname"])
    overrun = occupied.filter(pl.col("end") > pl.col("c_end"))
    assert overrun.height > 0
    assert ((overrun["end"] - overrun["c_end"]).dt.total_minutes() <= 15).all()


@pytest.mark.parametrize("schema", CAPABILITY_SCHEMAS)
def test_every_capability_schema_names_node_types(tmp_path, schema):
    site = generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=8, years=0.2, seed=2, capability_schema=schema)
    join = {
        "property_id": "JOIN blazar.resource_properties p ON p.id = c.property_id WHERE p.property_name",
        "capability_id": "JOIN blazar.extra_capabilities p ON p.id = c.capability_id WHERE p.capability_name",
        "capability_name": "WHERE c.capability_name",
    }[schema]
    engine = open_engine(site.url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT h.hypervisor_hostname, c.capability_value FROM blazar.computehost_extra_capabilities c "
            f"JOIN blazar.computehosts h ON h.id = c.computehost_id {join} = 'node_type'")).fetchall()
    engine.dispose()
    truth = pl.read_parquet(site.truth_dir / "truth_spans.parquet").filter(level="reservable")
    expected = set(zip(truth["hypervisor_hostname"], truth["node_type"]))
    assert set(map(tuple, rows)) == expected


def test_unknown_quirk_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown quirk"):
        generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=2, years=0.1, seed=1, quirks={"nope"})


@pytest.mark.parametrize(("kind", "name"), [("baremetal", "zun_auto_remove"), ("kvm", "zun_pause_kill"),
                                            ("edge", "broken_rows")])
def test_a_quirk_of_another_kind_is_one_clear_line(tmp_path, capsys, kind, name):
    """click accepts every kind's quirk names (the kind is not known yet); the command checks them
    against the kind before writing anything (the old code failed later as 'unknown quirk', or
    ignored a host quirk on an edge site)."""
    with pytest.raises(SystemExit) as stopped:
        main(["generate-site", "--db-url", f"sqlite:///{tmp_path}/main.sqlite", "--kind", kind, "--hosts", "2",
              "--years", "0.1", "--no-quirk", name])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --no-quirk {name}: not a quirk of --kind {kind}"), lines
    assert not list(tmp_path.iterdir())
