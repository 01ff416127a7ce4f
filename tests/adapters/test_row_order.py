"""Which row an adapter takes must not follow the order its rows arrive in (docs/semantics.md):
the same rows in every order, with ties in the times that order them, give the same answer."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

from exporter.adapters import blazar_hosts, host_resources
from exporter.adapters.nova_segments import placement_segments
from tests.adapters.tables import actions, capabilities, compute_nodes, computehosts, events, instances, t, tables

NODE_TYPE = "node_type"


@pytest.mark.parametrize(("low_host", "high_host", "b_id", "c_id", "expected"), [
    ("7", "8", "2", "0", "b"),
    # ids compared as numbers: "10" is the higher, though "9" is as text
    ("9", "10", "9", "10", "c"),
])
def test_capabilities_written_at_one_moment_give_one_node_type_in_any_row_order(low_host, high_host, b_id, c_id,
                                                                                expected):
    # Two computehosts rows of h1 enrolled at one moment, two node_type rows of one of them written at
    # one moment: the higher computehost id, then the higher capability id, wins.
    at = t("01-01 00:00")
    caps = capabilities(
        {"id": "1", "computehost_id": low_host, "capability_name": NODE_TYPE, "capability_value": "a", "created_at": at},
        {"id": b_id, "computehost_id": high_host, "capability_name": NODE_TYPE, "capability_value": "b", "created_at": at},
        {"id": c_id, "computehost_id": high_host, "capability_name": NODE_TYPE, "capability_value": "c", "created_at": at})
    hosts = computehosts({"id": low_host, "hypervisor_hostname": "h1", "created_at": at},
                         {"id": high_host, "hypervisor_hostname": "h1", "created_at": at})
    for caps_order, hosts_order in itertools.product(itertools.permutations(range(3)), ([0, 1], [1, 0])):
        windows = blazar_hosts.blazar_host_windows({"blazar.computehosts": hosts[hosts_order].lazy()})
        found = blazar_hosts.named_capabilities({"blazar.computehost_extra_capabilities": caps[list(caps_order)].lazy()})
        attributes = blazar_hosts.host_attributes(windows, found).collect()
        assert attributes.select("hypervisor_hostname", NODE_TYPE).rows() == [("h1", expected)], (caps_order, hosts_order)


def test_host_rows_starting_at_one_moment_give_one_hypervisor_kind_in_any_row_order():
    # The newest type decides; rows starting together: the last in row id order, nova.compute_nodes
    # "10" (ids compared as numbers: "9" before "10"; as text "9" would be last).
    at = t("01-01 00:00")
    windows = pl.DataFrame({
        "source_table": ["nova.compute_nodes", "nova.compute_nodes", "blazar.computehosts"],
        "source_id": ["10", "9", "7"], "hypervisor_hostname": ["h1"] * 3,
        "hypervisor_type": ["QEMU", "ironic", "QEMU"], "start": [at] * 3})
    for order in itertools.permutations(range(3)):
        kinds = host_resources.host_kinds(windows[list(order)].lazy()).collect()
        assert kinds.rows() == [("h1", True)], order  # nova.compute_nodes "10": QEMU


def test_host_rows_starting_at_one_moment_give_one_inventory_in_any_row_order():
    # Two nova rows of h1 created at one moment (a duplicated compute node record), two Blazar rows
    # later, also together: the first in row id order of each stands for them (nova "9", ids compared
    # as numbers). A span at the nova rows' start takes nova "9" (covering); one before every row the
    # first later nova row, "9" again; one in March the covering nova row.
    at, later = t("01-02 00:00"), t("02-01 00:00")
    windows = pl.DataFrame({
        "source_table": ["nova.compute_nodes", "nova.compute_nodes", "blazar.computehosts", "blazar.computehosts"],
        "source_id": ["9", "10", "8", "7"], "hypervisor_hostname": ["h1"] * 4, "start": [at, at, later, later],
        "end": [None] * 4, "vcpus": [8.0, 16.0, 32.0, 64.0], "memory_mb": [1.0] * 4, "disk_gb": [1.0] * 4},
        schema_overrides={"end": pl.Datetime("us")})
    spans = pl.DataFrame({"hypervisor_hostname": ["h1"] * 3, "start": [at, t("01-01 00:00"), t("03-01 00:00")]})
    for order in itertools.permutations(range(4)):
        found = host_resources.inventory_at_start(spans.lazy(), windows[list(order)].lazy()).collect()
        assert found.get_column("host_vcpus").to_list() == [8.0, 8.0, 8.0], order


def test_blazar_rows_starting_at_one_moment_give_one_inventory_in_any_row_order():
    # Without nova rows, two Blazar rows of h1 enrolled together: the first in row id order ("9" < "10").
    at = t("01-02 00:00")
    windows = pl.DataFrame({
        "source_table": ["blazar.computehosts"] * 2, "source_id": ["9", "10"], "hypervisor_hostname": ["h1"] * 2,
        "start": [at, at], "end": [None, None], "vcpus": [32.0, 64.0], "memory_mb": [1.0] * 2, "disk_gb": [1.0] * 2},
        schema_overrides={"end": pl.Datetime("us")})
    spans = pl.DataFrame({"hypervisor_hostname": ["h1", "h1"], "start": [t("01-01 00:00"), at]})
    for order in ([0, 1], [1, 0]):
        found = host_resources.inventory_at_start(spans.lazy(), windows[order].lazy()).collect()
        assert found.get_column("host_vcpus").to_list() == [32.0, 32.0], order


def _walked(named: dict, node: str | None, migrations: pl.DataFrame | None = None) -> pl.DataFrame:
    """The placement segments of one instance i1 (a row with ``node``) over ``named`` tables."""
    row = pl.DataFrame({
        "source_table": ["nova.instances"], "source_id": ["1"], "entity_id": ["i1"], "hypervisor_hostname": [node],
        "start": [t("03-01 00:00")], "end": [t("03-02 00:00")], "vcpus": [1.0], "memory_mb": [1.0], "disk_gb": [1.0],
        "vm_state": ["active"]}, schema_overrides={"hypervisor_hostname": pl.String})
    lazy = {name: frame.lazy() for name, frame in tables(instances=instances(), **named).items()}
    if migrations is not None:
        lazy["nova.migrations"] = migrations.lazy()
    return placement_segments(lazy, row).select("start", "hypervisor_hostname")


def test_events_at_one_moment_name_one_host_in_any_row_order():
    # A row without a node, placed by the host its events ran on: two reboots finishing at one moment on
    # two service hosts. The first by (event, start, service host, action) names it: svc1 -> h1.
    nodes = compute_nodes({"id": 1, "host": "svc1", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                          {"id": 2, "host": "svc2", "hypervisor_hostname": "h2", "created_at": t("01-01 00:00")})
    acted = actions({"id": 1, "instance_uuid": "i1", "action": "reboot", "start_time": t("03-01 01:00")},
                    {"id": 2, "instance_uuid": "i1", "action": "reboot", "start_time": t("03-01 01:00")})
    reboot = {"event": "compute_reboot_instance", "start_time": t("03-01 01:05"), "finish_time": t("03-01 01:10"),
              "result": "Success"}
    ran = events({"action_id": 2, **reboot}, {"action_id": 1, **reboot}).with_columns(host=pl.Series(["svc2", "svc1"]))
    for actions_order, events_order in itertools.product(([0, 1], [1, 0]), repeat=2):
        named = dict(compute_nodes=nodes, instance_actions=acted[actions_order], instance_actions_events=ran[events_order])
        assert _walked(named, None).rows() == [(t("03-01 00:00"), "h1")], (actions_order, events_order)


def test_migrations_requested_at_one_moment_name_one_host_in_any_row_order():
    # A resize with two migration rows requested at one moment: the segment before it takes the
    # source node of the last of them by (type, source node, ...): h4, not h3.
    acted = actions({"id": 1, "instance_uuid": "i1", "action": "resize", "start_time": t("03-01 01:00")})
    ran = events({"action_id": 1, "event": "compute_finish_resize", "start_time": t("03-01 01:05"),
                  "finish_time": t("03-01 01:10"), "result": "Success"})
    moves = pl.DataFrame({
        "instance_uuid": ["i1", "i1"], "migration_type": ["resize"] * 2, "status": ["confirmed"] * 2,
        "source_node": ["h4", "h3"], "dest_node": ["h1", "h2"], "old_instance_type_id": ["1"] * 2,
        "new_instance_type_id": ["2"] * 2, "created_at": [t("03-01 01:00")] * 2})
    for order in ([0, 1], [1, 0]):
        segments = _walked(dict(instance_actions=acted, instance_actions_events=ran), "h0", moves[order])
        assert segments.rows() == [(t("03-01 00:00"), "h4"), (t("03-01 01:10"), "h0")], order
