"""Host levels: total from nova ∪ Blazar per hostname, reservable from Blazar, inventory, node_type."""

from __future__ import annotations

import polars as pl
import pytest

from exporter.adapters import blazar_hosts
from exporter.reconstruct.pipeline import spans_from_tables
from tests.adapters.tables import SNAPSHOT, capabilities, compute_nodes, computehosts, instances, t, tables


def run(**named):
    return spans_from_tables(tables(**named), site="s", snapshot_time=SNAPSHOT)


def level(result, name):
    return result.spans.filter(pl.col("level") == name).sort("start")


def hours(frame):
    end = pl.col("end").fill_null(pl.lit(SNAPSHOT))
    return frame.select(((end - pl.col("start")).dt.total_seconds() / 3600).sum()).item()


def test_re_enrolled_host_is_one_identity_and_the_gap_is_not_total():
    result = run(compute_nodes=compute_nodes(
        {"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00"), "deleted_at": t("02-01 00:00")},
        {"id": 9, "hypervisor_hostname": "h1", "created_at": t("03-01 00:00"), "deleted_at": t("04-01 00:00")}))
    total = level(result, "total")
    assert total["hypervisor_hostname"].to_list() == ["h1", "h1"]
    assert hours(total) == (31 + 31) * 24  # January + March, not February


def test_ironic_zero_inventory_is_taken_from_the_blazar_row():
    result = run(
        compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "vcpus": 0, "memory_mb": 0, "local_gb": 0,
                                     "created_at": t("01-01 00:00")}),
        computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "vcpus": 64, "memory_mb": 1024,
                                   "local_gb": 10, "created_at": t("01-01 06:00")}))
    total = level(result, "total").row(0, named=True)
    assert (total["nodes"], total["vcpus"], total["memory_mb"], total["disk_gb"]) == (1.0, 64.0, 1024.0, 10.0)


def test_non_zero_nova_inventory_wins_over_blazar():
    result = run(
        compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "vcpus": 48, "created_at": t("01-01 00:00")}),
        computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "vcpus": 64, "created_at": t("01-01 00:00")}))
    assert level(result, "reservable")["vcpus"].to_list() == [48.0]


def test_the_nova_row_covering_a_span_start_wins_over_a_later_row_that_has_ended():
    # A [Jan, open) 48 vCPUs and B [Mar, Apr) 64: an instance from May on holds A's 48, the row
    # covering its start, not B's, the latest-starting row before it.
    result = run(
        compute_nodes=compute_nodes(
            {"id": 1, "hypervisor_hostname": "h1", "vcpus": 48, "created_at": t("01-01 00:00")},
            {"id": 2, "hypervisor_hostname": "h1", "vcpus": 64, "created_at": t("03-01 00:00"),
             "deleted_at": t("04-01 00:00")}),
        instances=instances({"id": 1, "uuid": "i1", "node": "h1", "created_at": t("05-01 00:00"),
                             "launched_at": t("05-01 00:00"), "terminated_at": t("05-02 00:00")}))
    assert level(result, "occupied")["vcpus"].to_list() == [48.0]


def test_hard_deleted_nova_history_survives_where_blazar_covers_it_and_is_reported():
    result = run(
        compute_nodes=compute_nodes({"id": 5, "hypervisor_hostname": "h1", "created_at": t("06-01 00:00")}),
        computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}))
    total = level(result, "total")
    assert hours(total) == hours(pl.DataFrame({"start": [t("01-01 00:00")], "end": [None]},
                                              schema={"start": pl.Datetime("us"), "end": pl.Datetime("us")}))
    blazar_only = total.filter(pl.col("source_table") == "blazar.computehosts")
    assert blazar_only["end"].to_list() == [t("06-01 00:00")]
    assert result.audit["blazar_only_total_hours"] == hours(blazar_only)


def test_duplicate_blazar_rows_are_merged_and_the_overlap_recorded():
    result = run(
        compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}),
        computehosts=computehosts(
            {"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00"), "deleted_at": t("01-11 00:00")},
            {"id": "8", "hypervisor_hostname": "h1", "created_at": t("01-06 00:00"), "deleted_at": t("01-21 00:00")}))
    reservable = level(result, "reservable")
    assert hours(reservable) == 20 * 24  # Jan 1 .. Jan 21, counted once
    clipped = [c for c in result.audit["clipped"] if c["level"] == "reservable" and c["reason"] == "duplicate_entity"]
    assert sum(c["hours"] for c in clipped) == 5 * 24  # Jan 6 .. Jan 11 was evidenced twice


def test_rows_without_start_or_with_end_before_start_are_rejected():
    result = run(compute_nodes=compute_nodes(
        {"id": 1, "hypervisor_hostname": "h1", "created_at": None},
        {"id": 2, "hypervisor_hostname": "h2", "created_at": t("02-01 00:00"), "deleted_at": t("01-01 00:00")},
        {"id": 3, "hypervisor_hostname": None, "created_at": t("01-01 00:00")}))
    reasons = dict(result.rejected.select("source_id", "rejection_reason").iter_rows())
    assert reasons == {"1": "null_start", "2": "invalid_time_range", "3": "missing_host"}
    assert level(result, "total").height == 0


@pytest.mark.parametrize("schema", ["capability_name", "capability_id", "property_id"])
def test_node_type_and_gpus_come_from_capabilities_in_every_schema(schema):
    names = {"node_type": "n1", "gpu.gpu_count": "n2", "uid": "n3"}
    rows = [("node_type", "gpu_v100"), ("gpu.gpu_count", "4"), ("uid", "x")]
    if schema == "capability_name":
        caps = capabilities(*({"computehost_id": "7", "capability_name": n, "capability_value": v} for n, v in rows))
        extra = {}
    else:
        caps = capabilities(*({"computehost_id": "7", schema: names[n], "capability_value": v} for n, v in rows))
        name_table = "extra_capabilities" if schema == "capability_id" else "resource_properties"
        name_column = "capability_name" if schema == "capability_id" else "property_name"
        extra = {name_table: pl.DataFrame({"id": list(names.values()), name_column: list(names)})}
    result = run(compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}),
                 computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}),
                 computehost_extra_capabilities=caps, **extra)
    total = level(result, "total").row(0, named=True)
    assert (total["node_type"], total["gpus"]) == ("gpu_v100", 4.0)


def test_a_host_blazar_never_knew_has_unknown_node_type_and_no_gpus():
    result = run(compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}))
    total = level(result, "total").row(0, named=True)
    assert (total["node_type"], total["gpus"], total["pool"]) == ("unknown", 0.0, None)


def test_newest_capability_value_wins_and_empty_values_are_ignored():
    caps = capabilities(
        {"computehost_id": "7", "capability_name": "node_type", "capability_value": "old", "created_at": t("01-01 00:00")},
        {"computehost_id": "7", "capability_name": "node_type", "capability_value": "new", "created_at": t("02-01 00:00")},
        {"computehost_id": "7", "capability_name": "node_type", "capability_value": "", "created_at": t("03-01 00:00")})
    hosts = computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")})
    frames = {"blazar.computehost_extra_capabilities": caps.lazy()}
    windows = blazar_hosts.blazar_host_windows({"blazar.computehosts": hosts.lazy()})
    attributes = blazar_hosts.host_attributes(windows, blazar_hosts.named_capabilities(frames)).collect()
    assert attributes.row(0, named=True)["node_type"] == "new"


def test_the_newest_computehosts_row_decides_before_the_newest_capability_row():
    # h1 enrolled twice at one moment (rows 7 and 8): row 8, the higher id, is the newest host row,
    # so its capability "b" wins over row 7's "a" written an hour later.
    caps = capabilities(
        {"id": "1", "computehost_id": "7", "capability_name": "node_type", "capability_value": "a",
         "created_at": t("01-01 01:00")},
        {"id": "2", "computehost_id": "8", "capability_name": "node_type", "capability_value": "b",
         "created_at": t("01-01 00:00")})
    hosts = computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                         {"id": "8", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")})
    windows = blazar_hosts.blazar_host_windows({"blazar.computehosts": hosts.lazy()})
    found = blazar_hosts.named_capabilities({"blazar.computehost_extra_capabilities": caps.lazy()})
    assert blazar_hosts.host_attributes(windows, found).collect().row(0, named=True)["node_type"] == "b"


def test_a_gpu_count_that_is_no_finite_count_is_ignored_never_nan():
    caps = capabilities(*(
        {"computehost_id": "7", "capability_name": "gpu.gpu_count", "capability_value": value,
         "created_at": t(f"0{month}-01 00:00")}
        for month, value in enumerate(("2", "nan", "inf", "-1", "two"), start=1)))
    hosts = computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")})
    frames = {"blazar.computehost_extra_capabilities": caps.lazy()}
    windows = blazar_hosts.blazar_host_windows({"blazar.computehosts": hosts.lazy()})
    attributes = blazar_hosts.host_attributes(windows, blazar_hosts.named_capabilities(frames)).collect()
    assert attributes.row(0, named=True)["gpus"] == 2.0  # the newest value that is a count
    only_nan = capabilities({"computehost_id": "7", "capability_name": "gpu.gpu_count", "capability_value": "NaN",
                             "created_at": t("01-01 00:00")})
    frames = {"blazar.computehost_extra_capabilities": only_nan.lazy()}
    attributes = blazar_hosts.host_attributes(windows, blazar_hosts.named_capabilities(frames)).collect()
    assert attributes.row(0, named=True)["gpus"] == 0.0  # as a host without a GPU count


def test_reservable_outside_total_cannot_happen_because_blazar_rows_evidence_total():
    result = run(computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}))
    assert hours(level(result, "reservable")) == hours(level(result, "total"))
