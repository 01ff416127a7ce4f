"""Which row an adapter takes must not follow the order its rows arrive in (docs/semantics.md):
the same rows in every order, with ties in the times that order them, give the same answer."""

from __future__ import annotations

import itertools

import polars as pl

from exporter.adapters import blazar_hosts, host_resources
from tests.adapters.tables import capabilities, computehosts, t

NODE_TYPE = "node_type"


def test_capabilities_written_at_one_moment_give_one_node_type_in_any_row_order():
    # Two computehosts rows of h1 enrolled at one moment, two node_type rows of one of them written at
    # one moment: the higher computehost id ("8"), then the higher capability id ("2"), wins.
    at = t("01-01 00:00")
    caps = capabilities(
        {"id": "1", "computehost_id": "7", "capability_name": NODE_TYPE, "capability_value": "a", "created_at": at},
        {"id": "2", "computehost_id": "8", "capability_name": NODE_TYPE, "capability_value": "b", "created_at": at},
        {"id": "0", "computehost_id": "8", "capability_name": NODE_TYPE, "capability_value": "c", "created_at": at})
    hosts = computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": at},
                         {"id": "8", "hypervisor_hostname": "h1", "created_at": at})
    for caps_order, hosts_order in itertools.product(itertools.permutations(range(3)), ([0, 1], [1, 0])):
        windows = blazar_hosts.blazar_host_windows({"blazar.computehosts": hosts[hosts_order].lazy()})
        found = blazar_hosts.named_capabilities({"blazar.computehost_extra_capabilities": caps[list(caps_order)].lazy()})
        attributes = blazar_hosts.host_attributes(windows, found).collect()
        assert attributes.select("hypervisor_hostname", NODE_TYPE).rows() == [("h1", "b")], (caps_order, hosts_order)


def test_host_rows_starting_at_one_moment_give_one_hypervisor_kind_in_any_row_order():
    # The newest type decides; rows starting together: the last by (source table, row id as text).
    at = t("01-01 00:00")
    windows = pl.DataFrame({
        "source_table": ["nova.compute_nodes", "nova.compute_nodes", "blazar.computehosts"],
        "source_id": ["10", "9", "7"], "hypervisor_hostname": ["h1"] * 3,
        "hypervisor_type": ["QEMU", "ironic", "QEMU"], "start": [at] * 3})
    for order in itertools.permutations(range(3)):
        kinds = host_resources.host_kinds(windows[list(order)].lazy()).collect()
        assert kinds.rows() == [("h1", False)], order  # nova.compute_nodes "9": ironic
