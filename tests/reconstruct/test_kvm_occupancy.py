"""KVM lifecycles through the whole pipeline: generate -> extract -> reconstruct -> timeline.

Occupied and stopped are split by placement segment (docs/semantics.md): shelve-offload frees the
host until unshelve, moves change the host, resizes the size. The generator's truth has one span
per placement, so the rebuilt vCPU-hours must match it, and the documented choices (the source
of an unconfirmed resize is free; a revert restores the old size) are checked on the spans.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
import sqlalchemy as sa

from exporter.adapters.registry import declared_tables
from exporter.columns import REJECT_REASONS
from exporter.config import SiteConfig
from exporter.db import open_engine
from exporter.extract.copy import extract_snapshot
from exporter.extract.tableread import read_tables
from exporter.live.source import LiveSite
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot
from exporter.sitegen import generate_site
from exporter.sitegen.quirks import KVM_ONLY, QUIRKS

LOSSY = {"nova_hard_deleted", "blazar_hard_deleted", "killed_by_blazar"}  # quantified elsewhere
START = dt.datetime(2020, 1, 1)  # after Rocky: every placement's host is named by some row


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    root = tmp_path_factory.mktemp("kvm")
    site = generate_site(f"sqlite:///{root}/site.sqlite", hosts=8, years=1, seed=7, kind="kvm", start=START,
                         truth_dir=root / "truth", quirks=set(QUIRKS) - LOSSY)
    config = SiteConfig(name="gen", display_name="gen", db_url=site.url, databases=site.databases)
    snapshot = extract_snapshot(config, root / "snapshots").snapshot_dir
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="gen", start=site.start, snapshot_time=site.end))
    reads = read_tables(open_engine(site.url, databases=site.databases), declared_tables())
    tables = {name: read.frame for name, read in reads.items() if read.frame is not None}
    return site, rec, tables, pl.read_parquet(root / "truth" / "truth_spans.parquet"), \
        json.loads((root / "truth" / "truth.json").read_text())


def _truth_vcpu_hours(truth: pl.DataFrame, start: dt.datetime, end: dt.datetime, snapshot: dt.datetime) -> dict:
    lo = pl.max_horizontal("start", pl.lit(start))
    hi = pl.min_horizontal(pl.col("end").fill_null(pl.lit(snapshot)), pl.lit(end))
    hours = ((hi - lo).dt.total_seconds() / 3600).clip(lower_bound=0) * pl.col("vcpus")
    per_level = dict(truth.group_by("level").agg(hours.sum()).iter_rows())
    return {"occupied": per_level["occupied"], "stopped": per_level["stopped"],
            "active": per_level["occupied"] - per_level["stopped"]}


def test_occupied_active_and_stopped_vcpu_hours_match_truth(rebuilt):
    site, rec, _, truth, effects = rebuilt
    assert all(effects["quirks"][name]["count"] > 0 for name in KVM_ONLY)
    step = dt.timedelta(hours=1)
    vcpus = rec.timeline.filter(pl.col("resource") == "vcpus")
    per_state = dict(vcpus.group_by(pl.col("state").cast(pl.String)).agg(pl.col("value").sum()).iter_rows())
    rebuilt_hours = {"active": per_state["active"], "stopped": per_state["stopped"],
                     "occupied": per_state["active"] + per_state["stopped"]}
    expected = _truth_vcpu_hours(truth, site.start, vcpus["timestamp"].max() + step, site.end)
    for level, hours in expected.items():
        assert rebuilt_hours[level] == pytest.approx(hours, rel=0.005), level
    # offloaded rows have node NULL; their events and migrations name their hosts
    occupied_rejects = rec.rejected.filter(pl.col("level") == "occupied")
    assert "missing_host" not in set(occupied_rejects["rejection_reason"])
    clipped = {(c["level"], c["reason"]) for c in rec.audit["clipped"]}
    assert ("occupied", "shelved_offloaded") in clipped
    # every reason is one of the documented vocabulary
    reasons = set(rec.rejected["rejection_reason"]) | {reason for _, reason in clipped}
    assert reasons <= set(REJECT_REASONS), reasons - set(REJECT_REASONS)


def test_per_host_occupied_and_stopped_vcpu_hours_match_truth(rebuilt):
    site, rec, _, truth, _ = rebuilt

    def per_host(spans: pl.DataFrame, level: str) -> dict:
        hours = (pl.col("end").fill_null(pl.lit(site.end)) - pl.col("start")).dt.total_seconds() / 3600
        chosen = spans.filter(pl.col("level") == level)
        return dict(chosen.group_by("hypervisor_hostname").agg((hours * pl.col("vcpus")).sum()).iter_rows())

    for level in ("occupied", "stopped"):
        expected, got = per_host(truth, level), per_host(rec.spans, level)
        assert got.keys() == expected.keys()
        for host, hours in expected.items():
            assert got[host] == pytest.approx(hours, rel=1e-9), (level, host)


def _finished(tables: dict, event: str) -> pl.DataFrame:
    """entity_id, at (finish time) of every successful ``event``."""
    actions = tables["nova.instance_actions"].select(pl.col("id").alias("action_id"),
                                                     pl.col("instance_uuid").alias("entity_id"))
    events = tables["nova.instance_actions_events"].filter((pl.col("event") == event) & (pl.col("result") == "Success"))
    return events.join(actions, on="action_id").select("entity_id", pl.col("finish_time").alias("at"))


def _occupied(rec, entity_id: str) -> pl.DataFrame:
    return rec.spans.filter((pl.col("level") == "occupied") & (pl.col("entity_id") == entity_id)).sort("start")


def test_unconfirmed_resize_occupies_only_the_destination_with_the_new_size(rebuilt):
    # the documented choice: Nova's claim of the old flavor on the source until confirm is not occupancy
    _, rec, tables, _, _ = rebuilt
    migrations = tables["nova.migrations"]
    pending = migrations.filter((pl.col("status") == "finished") & (pl.col("migration_type") == "resize"))
    assert pending.height
    finished = _finished(tables, "compute_finish_resize")
    for move in pending.iter_rows(named=True):
        at = finished.filter(pl.col("entity_id") == move["instance_uuid"])["at"].max()
        spans = _occupied(rec, move["instance_uuid"])
        after, before = spans.filter(pl.col("start") >= at), spans.filter(pl.col("start") < at)
        assert after.height and set(after["hypervisor_hostname"]) == {move["dest_node"]}
        assert (before["end"] <= at).all() and before["hypervisor_hostname"][-1] == move["source_node"]
        assert after["vcpus"][0] > before["vcpus"][-1]  # resized to a bigger flavor
        on_source = spans.filter((pl.col("hypervisor_hostname") == move["source_node"])
                                 & (pl.col("end").is_null() | (pl.col("end") > at)))
        assert on_source.is_empty()


def test_reverted_resize_restores_the_old_size_on_the_source(rebuilt):
    _, rec, tables, _, _ = rebuilt
    reverted = tables["nova.migrations"].filter(pl.col("status") == "reverted")
    assert reverted.height
    flavors = {row["id"]: row["vcpus"] for row in tables["nova_api.flavors"].iter_rows(named=True)}
    finished, back = _finished(tables, "compute_finish_resize"), _finished(tables, "compute_finish_revert_resize")
    for move in reverted.iter_rows(named=True):
        uuid = move["instance_uuid"]
        resized, restored = finished.filter(pl.col("entity_id") == uuid)["at"].max(), \
            back.filter(pl.col("entity_id") == uuid)["at"].max()
        spans = _occupied(rec, uuid)
        during = spans.filter((pl.col("start") >= resized) & (pl.col("start") < restored))
        after = spans.filter(pl.col("start") >= restored)
        assert set(during["hypervisor_hostname"]) == {move["dest_node"]}
        assert set(during["vcpus"]) == {flavors[move["new_instance_type_id"]]}
        assert after["hypervisor_hostname"][0] == move["source_node"]
        assert after["vcpus"][0] == flavors[move["old_instance_type_id"]]


def test_audit_says_which_placement_evidence_there_was(rebuilt):
    _, rec, _, _, _ = rebuilt
    evidence = rec.audit["placement_evidence"]
    assert evidence["table_rows"]["nova.migrations"] > 0 and evidence["table_rows"]["nova.instance_extra"] > 0
    assert evidence["event_rows_naming_a_host"] > 0
    assert {"nova.instances.node", "nova.migrations",
            "nova.instance_actions_events.host"} <= set(evidence["segments_by_host_evidence"])


def test_the_site_is_kvm_because_its_hosts_are(rebuilt):
    _, rec, _, _, _ = rebuilt
    hosts = rec.spans.filter(pl.col("level") == "total")["hypervisor_hostname"].n_unique()
    kinds = rec.audit["hypervisors"]
    assert kinds["site"] == "kvm" and kinds["ironic_hosts"] == 0 and kinds["kvm_hosts"] >= hosts > 0


def _value(frame: pl.DataFrame, pool: str, state: str) -> float:
    chosen = frame.filter((pl.col("pool") == pool) & (pl.col("state") == state) & (pl.col("resource") == "vcpus"))
    return float(chosen["value"].sum())


def _offload(site, uuid: str, at: dt.datetime) -> None:
    """What Nova writes when a running instance is shelved and offloaded at once (Rocky+)."""
    engine = sa.create_engine(f"{site.url.rsplit('/', 1)[0]}/nova.sqlite")
    meta = sa.MetaData()
    instances, actions, events = (sa.Table(name, meta, autoload_with=engine)
                                  for name in ("instances", "instance_actions", "instance_actions_events"))
    with engine.begin() as conn:
        host = conn.execute(sa.select(instances.c.host).where(instances.c.uuid == uuid)).scalar_one()
        action_id = conn.execute(sa.select(sa.func.max(actions.c.id))).scalar_one() + 1
        event_id = conn.execute(sa.select(sa.func.max(events.c.id))).scalar_one() + 1
        conn.execute(actions.insert().values(id=action_id, instance_uuid=uuid, action="shelve", request_id="req-x",
                                             start_time=at, created_at=at, updated_at=at, deleted=0))
        conn.execute(events.insert().values(id=event_id, action_id=action_id, event="compute_shelve_instance",
                                            start_time=at, finish_time=at + dt.timedelta(seconds=30),
                                            result="Success", host=host, created_at=at, deleted=0))
        conn.execute(instances.update().where(instances.c.uuid == uuid).values(
            host=None, node=None, vm_state="shelved_offloaded", updated_at=at + dt.timedelta(seconds=30)))
    engine.dispose()


def test_live_exporter_follows_an_offload_through_the_same_segments(tmp_path):
    site = generate_site(f"sqlite:///{tmp_path}/site.sqlite", hosts=6, years=0.5, seed=7, kind="kvm", start=START,
                         truth_dir=tmp_path / "truth", quirks=set(QUIRKS) - LOSSY)
    truth = pl.read_parquet(tmp_path / "truth" / "truth_spans.parquet")
    open_spans = truth.filter(pl.col("end").is_null() & (pl.col("booking") == "ondemand"))
    stopped = open_spans.filter(pl.col("level") == "stopped").select("entity_id")
    running = open_spans.filter(pl.col("level") == "occupied").join(stopped, on="entity_id", how="anti").row(0, named=True)
    config = SiteConfig(name="gen", display_name="gen", db_url=site.url, databases=site.databases,
                        history_start=site.start)
    live = LiveSite(config, full_reload_interval=3600)
    before = live(site.end)
    _offload(site, running["entity_id"], site.end + dt.timedelta(minutes=10))
    now = site.end + dt.timedelta(hours=1)
    after = live(now)
    assert live.tables.last_mode == "incremental"
    assert _value(after.gauges, "ondemand", "active") == pytest.approx(
        _value(before.gauges, "ondemand", "active") - running["vcpus"])
    # its history is kept (a row with node NULL is not rejected): the counters only grow
    assert _value(after.counters, "ondemand", "active") >= _value(before.counters, "ondemand", "active")
    reference_site = LiveSite(config, full_reload_interval=0)
    full = reference_site(now)
    for frame, reference in ((after.gauges, full.gauges), (after.counters, full.counters)):
        assert _value(frame, "ondemand", "active") == pytest.approx(_value(reference, "ondemand", "active"), rel=1e-9)
    live.close()
    reference_site.close()
