"""KVM lifecycles (shelve/offload/unshelve, resize, migrations): the generator writes what Nova
writes, and placement segments rebuilt from those rows match the truth per host and size."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.adapters import common, nova_instances, nova_placements, request_specs
from exporter.adapters.nova_segments import placement_segments
from exporter.db import open_engine
from exporter.extract.tableread import read_tables
from exporter.sitegen import generate_site
from exporter.sitegen.quirks import KVM_ONLY
from exporter.adapters.registry import declared_tables

LIFECYCLES = set(KVM_ONLY) | {"stop_start", "late_deleted_at", "never_launched", "failed_actions"}


def _site(tmp_path, start: dt.datetime, quirks=LIFECYCLES):
    site = generate_site(f"sqlite:///{tmp_path}/site.sqlite", hosts=8, years=1, seed=8, kind="kvm", start=start,
                         truth_dir=tmp_path / "truth", quirks=quirks)
    reads = read_tables(open_engine(site.url, databases=site.databases), declared_tables() + nova_placements.READS)
    tables = {name: read.frame.lazy() for name, read in reads.items() if read.frame is not None}
    truth = pl.read_parquet(tmp_path / "truth" / "truth_spans.parquet")
    return site, tables, truth, json.loads((tmp_path / "truth" / "truth.json").read_text())


def _segments(tables, priority=None) -> pl.DataFrame:
    links = request_specs.reservation_links(tables["nova_api.request_specs"]).collect()
    windows = nova_instances.instance_windows(tables, links=links.lazy()).collect()
    vm_state = common.typed(tables["nova.instances"], {"uuid": common.ID, "vm_state": common.TEXT}).collect()
    launched = windows.filter(pl.col("rejection_reason").is_null() | (pl.col("rejection_reason") == "missing_host"))
    return placement_segments(tables, launched.join(vm_state.rename({"uuid": "entity_id"}), on="entity_id"),
                              priority=priority)


def _hours(spans: pl.DataFrame, snapshot, by: list[str], column: str = "vcpus") -> dict:
    end = pl.col("end").fill_null(pl.lit(snapshot))
    hours = ((end - pl.col("start")).dt.total_seconds() / 3600 * pl.col(column)).sum()
    return {tuple(row[:-1]): row[-1] for row in spans.group_by(by).agg(hours).sort(by).iter_rows()}


def test_generator_writes_what_nova_writes(tmp_path):
    _, tables, _, truth = _site(tmp_path, dt.datetime(2020, 1, 1))
    assert all(truth["quirks"][name]["count"] > 0 for name in KVM_ONLY)
    migrations = tables["nova.migrations"].collect()
    assert set(migrations["migration_type"]) == {"resize", "migration", "live-migration", "evacuation"}
    assert {"confirmed", "completed", "done"} <= set(migrations["status"])
    events = set(tables["nova.instance_actions_events"].collect()["event"])
    assert {"compute_shelve_instance", "compute_shelve_offload_instance", "compute_unshelve_instance",
            "schedule_instances", "compute_finish_resize", "compute_confirm_resize", "compute_finish_revert_resize",
            "compute_post_live_migration_at_destination", "compute_rebuild_instance"} <= events
    rows = tables["nova.instances"].collect()
    offloaded = rows.filter(pl.col("vm_state") == "shelved_offloaded")
    assert offloaded.height and offloaded["node"].null_count() == offloaded.height
    # the retired flavor some instances were resized into is gone from the API database
    flavor_ids = set(tables["nova_api.flavors"].collect()["id"].cast(pl.String))
    assert str(migrations["new_instance_type_id"].max()) not in flavor_ids


def test_segments_match_truth_per_host_and_size_after_rocky(tmp_path):
    site, tables, truth, _ = _site(tmp_path, dt.datetime(2020, 1, 1))
    segments = _segments(tables)
    occupied = truth.filter(level="occupied")
    assert segments["hypervisor_hostname"].null_count() == 0  # no NULLed row loses its host
    for column in ("vcpus", "memory_mb", "disk_gb"):
        rebuilt = _hours(segments, site.end, ["hypervisor_hostname"], column)
        expected = _hours(occupied, site.end, ["hypervisor_hostname"], column)
        assert rebuilt.keys() == expected.keys()
        for host, hours in expected.items():
            assert rebuilt[host] == pytest.approx(hours, rel=1e-9), (column, host)
    sources = set(segments["host_evidence"]) | set(segments["size_evidence"])
    assert {"nova.migrations", "nova.instance_actions_events.host", "nova_api.flavors",
            "nova.instance_extra.flavor"} <= sources


def test_a_site_reorders_or_drops_host_and_size_sources(tmp_path):
    """The host/size orders are the site's (exporter.priority, sites.yaml ``priority:``): reordered,
    the answer is still the truth (the generated sources agree) but other sources speak; a source
    left out never speaks, so rows whose host only it named lose it."""
    site, tables, truth, _ = _site(tmp_path, dt.datetime(2020, 1, 1))
    occupied = truth.filter(level="occupied")
    events_first = _segments(tables, {
        "host": ("nova.instance_actions_events.host", "nova.migrations", "nova.instances.node"),
        "size": ("nova_api.flavors", "nova.instance_extra.flavor", "nova.instances")})
    default = _segments(tables)
    assert events_first.height == default.height
    for column in ("vcpus", "memory_mb", "disk_gb"):
        rebuilt = _hours(events_first, site.end, ["hypervisor_hostname"], column)
        expected = _hours(occupied, site.end, ["hypervisor_hostname"], column)
        assert rebuilt == pytest.approx(expected, rel=1e-9), column
    hosts_by = events_first.group_by("host_evidence").len().sort("len").get_column("host_evidence").to_list()
    assert hosts_by[-1] == "nova.instance_actions_events.host"  # most segments: the events speak first
    assert default.filter(host_evidence="nova.instance_actions_events.host").height < \
        events_first.filter(host_evidence="nova.instance_actions_events.host").height
    # nova_api.flavors has no say on the current flavor: the embedded copy (else the row) speaks for it
    assert "nova.instance_extra.flavor" in set(events_first["size_evidence"])
    row_only = _segments(tables, {"host": ("nova.instances.node",)})
    lost = row_only.filter(pl.col("hypervisor_hostname").is_null())
    assert lost.height > 0 and set(lost["host_evidence"].to_list()) == {None}
    assert default["hypervisor_hostname"].null_count() == 0


def test_offloaded_before_rocky_loses_only_what_truth_json_says(tmp_path):
    site, tables, truth, effects = _site(tmp_path, dt.datetime(2018, 3, 1))
    segments = _segments(tables)
    host_vcpus = dict(truth.filter(level="total").select("hypervisor_hostname", "vcpus").unique().iter_rows())
    nodes = segments.filter(pl.col("hypervisor_hostname").is_not_null()).with_columns(
        (pl.col("vcpus") / pl.col("hypervisor_hostname").replace_strict(host_vcpus)).alias("nodes"))
    rebuilt = sum(_hours(nodes, site.end, ["entity_id"], "nodes").values())
    expected = sum(_hours(truth.filter(level="occupied"), site.end, ["entity_id"], "nodes").values())
    lost = effects["quirks"]["shelve_offload"]["hours"]["lost_occupied_node_hours"]
    assert lost > 0
    assert rebuilt == pytest.approx(expected - lost, abs=2e-3)


def test_without_lifecycles_every_instance_is_one_segment_of_its_row(tmp_path):
    site, tables, truth, _ = _site(tmp_path, dt.datetime(2020, 1, 1), quirks=LIFECYCLES - KVM_ONLY)
    segments = _segments(tables)
    assert segments["entity_id"].is_unique().all()
    assert set(segments["host_evidence"]) == {"nova.instances.node"}
    assert _hours(segments, site.end, ["hypervisor_hostname"]) == pytest.approx(
        _hours(truth.filter(level="occupied"), site.end, ["hypervisor_hostname"]), rel=1e-9)
