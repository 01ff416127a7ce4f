"""The relations the adapters declare on their tables: consistent, and followed by the live filter."""

import datetime as dt

import polars as pl

from exporter.adapters.declared import shadow_twin
from exporter.adapters.registry import declared_tables, read_with_parent
from exporter.live.recent import recent_tables

CUTOFF = dt.datetime(2026, 1, 10)


def test_every_parent_relation_names_declared_tables_and_columns():
    declared = {source.name: source for source in declared_tables()}
    relations = [source for source in declared.values() if source.child_of is not None]
    assert relations, "no table declares a parent"
    for source in relations:
        relation = source.child_of
        assert relation.column in source.columns, source.name
        assert relation.parent in declared, source.name
        assert relation.parent_column in declared[relation.parent].columns, source.name
    for source in declared.values():
        assert set(source.spans_end) <= set(source.columns), source.name


def test_only_rows_written_with_their_parent_are_read_by_its_keys():
    children = read_with_parent(declared_tables())
    assert children["nova.instance_actions"].parent == "nova.instances"
    assert children["nova.instance_actions_events"].parent == "nova.instance_actions"
    # archived rows are moved by nova-manage and Blazar changes reservations on its own: scanned
    assert "nova.shadow_instance_actions" not in children and "blazar.reservations" not in children


def test_recent_rows_follow_parents_across_shadow_twins():
    day = lambda d: dt.datetime(2026, 1, d)  # noqa: E731
    instances = pl.DataFrame({"id": [1, 2], "uuid": ["old", "new"], "deleted_at": [day(2), None],
                              "terminated_at": [day(2), None]})
    shadow = pl.DataFrame({"id": [3], "uuid": ["archived-open"], "deleted_at": [day(12)],
                           "terminated_at": [None]}, schema_overrides={"terminated_at": pl.Datetime("us")})
    actions = pl.DataFrame({"id": [10, 11, 12], "instance_uuid": ["old", "new", "archived-open"]})
    shadow_actions = pl.DataFrame({"id": [13], "instance_uuid": ["new"]})
    events = pl.DataFrame({"id": [20, 21, 22], "action_id": [10, 13, 12]})
    hosts = pl.DataFrame({"id": [1], "deleted_at": [day(1)]})
    tables = {"nova.compute_nodes": hosts, "nova.instances": instances, shadow_twin("nova.instances"): shadow,
              "nova.instance_actions": actions, "nova.shadow_instance_actions": shadow_actions,
              "nova.instance_actions_events": events}
    recent = recent_tables(tables, cutoff=CUTOFF)
    assert recent["nova.instances"]["uuid"].to_list() == ["new"]
    assert recent["nova.shadow_instances"]["uuid"].to_list() == ["archived-open"]
    assert recent["nova.instance_actions"]["id"].to_list() == [11, 12]
    assert recent["nova.shadow_instance_actions"]["id"].to_list() == [13]
    assert recent["nova.instance_actions_events"]["id"].to_list() == [21, 22]
    assert recent["nova.compute_nodes"].equals(hosts)  # hosts are kept whole


def test_recent_edge_rows_follow_their_lease_and_container():
    day = lambda d: dt.datetime(2026, 1, d)  # noqa: E731
    leases = pl.DataFrame({"id": ["ended", "open"], "end_date": [day(5), day(20)], "deleted_at": [None, None]},
                          schema_overrides={"deleted_at": pl.Datetime("us")})
    reservations = pl.DataFrame({"id": ["r-ended", "r-open"], "lease_id": ["ended", "open"]})
    allocations = pl.DataFrame({"id": [1, 2, 3], "device_id": [7, 7, 8], "deleted_at": [day(5), day(2), None],
                                "reservation_id": ["r-ended", "r-open", "r-open"]})
    requests = pl.DataFrame({"id": [4, 5], "reservation_id": ["r-ended", "r-open"]})
    devices = pl.DataFrame({"id": [7, 8], "deleted_at": [day(1), None]},
                           schema_overrides={"deleted_at": pl.Datetime("us")})
    containers = pl.DataFrame({"id": [1, 2], "uuid": ["c-done", "c-running"], "status": ["Deleted", "Running"],
                               "updated_at": [day(3), day(3)]})
    actions = pl.DataFrame({"id": [30, 31], "container_uuid": ["c-done", "gone"]})
    events = pl.DataFrame({"id": [40, 41], "action_id": [30, 31]})
    tables = {"blazar.leases": leases, "blazar.reservations": reservations, "blazar.device_allocations": allocations,
              "blazar.device_reservations": requests, "blazar.devices": devices, "zun.container": containers,
              "zun.container_actions": actions, "zun.container_actions_events": events}
    recent = recent_tables(tables, cutoff=CUTOFF)
    assert recent["blazar.device_allocations"]["id"].to_list() == [3]  # 1: ended lease; 2: deleted before
    assert recent["blazar.device_reservations"]["id"].to_list() == [5]
    assert recent["blazar.devices"].equals(devices)  # devices, like hosts, are kept whole
    # a container's end depends on its status: all are kept; an action of a container with no row is not
    assert recent["zun.container"].equals(containers)
    assert recent["zun.container_actions"]["id"].to_list() == [30]
    assert recent["zun.container_actions_events"]["id"].to_list() == [40]
