"""nova.services as host-existence evidence beside compute_nodes, and the present disabled flag."""

from __future__ import annotations

import polars as pl

from exporter.adapters import nova_services
from exporter.reconstruct.pipeline import spans_from_tables
from tests.adapters.tables import SNAPSHOT, compute_nodes, services, t, tables

KVM = {"hypervisor_type": "QEMU", "vcpus": 32}


def site() -> dict[str, pl.DataFrame]:
    return tables(
        # cmp1's first compute node row was purged; its service row still says it ran since 01-01
        compute_nodes=compute_nodes(
            {"id": 1, "host": "cmp1", "hypervisor_hostname": "cmp1.example", "created_at": t("03-01 00:00"), **KVM},
            {"id": 2, "host": "ironic-1", "hypervisor_hostname": "node-a", "created_at": t("01-01 00:00")},
            {"id": 3, "host": "ironic-1", "hypervisor_hostname": "node-b", "created_at": t("01-01 00:00")}),
        services=services({"host": "cmp1", "created_at": t("01-01 00:00"), "disabled": 1},
                          {"host": "ironic-1", "created_at": t("01-01 00:00")},  # fronts two nodes
                          {"host": "spare", "created_at": t("02-01 00:00")},  # no compute node at all
                          {"host": "cmp1", "binary": "nova-conductor", "created_at": t("01-01 00:00")}))


def test_a_service_evidences_its_one_hypervisor_where_compute_nodes_are_silent():
    result = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT)
    total = result.spans.filter((pl.col("level") == "total") & (pl.col("hypervisor_hostname") == "cmp1.example"))
    pieces = sorted((row["source_table"], row["start"], row["end"]) for row in total.to_dicts())
    assert pieces == [("nova.compute_nodes", t("03-01 00:00"), None),
                      ("nova.services", t("01-01 00:00"), t("03-01 00:00"))]
    assert total.filter(pl.col("source_table") == "nova.services").select("evidence", "confidence").row(0) == \
        ("nova_service", "direct")
    # the KVM inventory comes from the compute node row (services carry none)
    assert total.get_column("vcpus").to_list() == [32.0, 32.0]


def test_shared_and_orphan_services_are_rejected_and_reported_never_invented():
    result = spans_from_tables(site(), site="s", snapshot_time=SNAPSHOT)
    hosts = set(result.spans.filter(pl.col("level") == "total").get_column("hypervisor_hostname"))
    assert hosts == {"cmp1.example", "node-a", "node-b"}
    rejected = result.rejected.filter(pl.col("source_table") == "nova.services")
    reasons = dict(rejected.group_by("rejection_reason").len().rows())
    assert reasons == {"shared_service": 1, "missing_fk": 1}
    assert result.audit["services"] == {"nova_compute_rows": 3, "orphan_hosts": ["spare"], "shared_hosts": ["ironic-1"]}
    entry = next(e for e in result.audit["sources"] if e["source_table"] == "nova.services")
    assert (entry["rows_in"], entry["rows_used"], entry["rows_rejected"]) == (3, 1, 2)


def test_disabled_hosts_per_node_type_count_only_live_disabled_services():
    frames = {name: frame.lazy() for name, frame in site().items()}
    hosts = pl.DataFrame({"hypervisor_hostname": ["cmp1.example", "node-a", "node-b"],
                          "node_type": ["kvm", "baremetal", "baremetal"]})
    assert nova_services.disabled_by_node_type(frames, hosts).rows() == [("baremetal", 0.0), ("kvm", 1.0)]
    no_services = {name: frame for name, frame in frames.items() if name != "nova.services"}
    assert nova_services.disabled_by_node_type(no_services, hosts).is_empty()
