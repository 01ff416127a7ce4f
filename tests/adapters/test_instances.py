"""Occupied and stopped: instance windows, booking, clipping into the reservation, stop periods."""

from __future__ import annotations

import polars as pl

from exporter.adapters import instance_actions
from exporter.adapters.nova_segments import placement_segments
from exporter.reconstruct.pipeline import spans_from_tables
from tests.adapters.tables import (
    SNAPSHOT, actions, allocations, compute_nodes, computehosts, events, instances, leases, request_specs,
    reservations, spec, t, tables,
)

BASE = dict(
    compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                                {"id": 2, "hypervisor_hostname": "kvm1", "hypervisor_type": "QEMU", "vcpus": 64,
                                 "created_at": t("01-01 00:00")}),
    computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}),
    leases=leases({"id": "L1", "start_date": t("03-01 00:00"), "end_date": t("03-05 00:00")}),
    reservations=reservations({"id": "R1", "lease_id": "L1"}),
    computehost_allocations=allocations({"id": "A1", "compute_host_id": "7", "reservation_id": "R1",
                                         "created_at": t("02-20 00:00")}),
)


def instance(**fields):
    row = {"id": 1, "uuid": "i1", "node": "h1", "created_at": t("03-01 01:00"), "launched_at": t("03-01 01:20"),
           "terminated_at": t("03-02 00:00"), "deleted_at": t("03-02 00:00")}
    return {**row, **fields}


def run(instance_rows, *, specs=(), action_rows=(), event_rows=()):
    named = dict(BASE, instances=instances(*instance_rows), request_specs=request_specs(*specs),
                 instance_actions=actions(*action_rows), instance_actions_events=events(*event_rows))
    return spans_from_tables(tables(**named), site="s", snapshot_time=SNAPSHOT)


def spans(result, level):
    rows = result.spans.filter(pl.col("level") == level).sort("start")
    return [(r["entity_id"], r["booking"], r["start"], r["end"]) for r in rows.iter_rows(named=True)]


def reasons(result, level="occupied"):
    return dict(result.rejected.filter(pl.col("level") == level).select("source_id", "rejection_reason").iter_rows())


def test_instance_created_after_lease_start_occupies_from_its_creation():
    result = run([instance()], specs=[{"instance_uuid": "i1", "spec": spec(hint="R1")}])
    assert spans(result, "occupied") == [("i1", "reservation", t("03-01 01:00"), t("03-02 00:00"))]
    assert result.spans.filter(pl.col("level") == "occupied")["pool"].to_list() == ["reservable"]


def test_flavor_named_reservation_id_books_against_that_reservation():
    result = run([instance()], specs=[{"instance_uuid": "i1", "spec": spec(flavor="reservation:R1")}])
    assert spans(result, "occupied")[0][1] == "reservation"
    assert result.spans.filter(pl.col("level") == "occupied")["reservation_id"].to_list() == ["R1"]


def test_instance_without_request_spec_hint_is_on_demand():
    result = run([instance()], specs=[{"instance_uuid": "i1", "spec": spec()}])
    occupied = result.spans.filter(pl.col("level") == "occupied")
    assert (occupied["booking"].to_list(), occupied["pool"].to_list()) == (["ondemand"], ["ondemand"])


def test_never_launched_build_is_rejected_not_counted():
    result = run([instance(launched_at=None)])
    assert reasons(result) == {"1": "never_launched"}
    assert spans(result, "occupied") == []


def test_instance_without_node_or_start_is_rejected():
    result = run([instance(id=1, node=None), instance(id=2, uuid="i2", created_at=None)])
    assert reasons(result) == {"1": "missing_host", "2": "null_start"}


def test_instance_killed_minutes_after_lease_end_is_clipped_to_the_committed_window():
    killed = instance(created_at=t("03-04 00:00"), terminated_at=t("03-05 00:10"), deleted_at=t("03-05 00:10"))
    result = run([killed], specs=[{"instance_uuid": "i1", "spec": spec(hint="R1")}])
    assert spans(result, "occupied") == [("i1", "reservation", t("03-04 00:00"), t("03-05 00:00"))]
    clipped = [c for c in result.audit["clipped"] if c["level"] == "occupied"]
    assert [(c["reason"], round(c["hours"] * 60)) for c in clipped] == [("outside_parent", 10)]


def test_reserved_instance_with_no_committed_overlap_on_its_host_is_an_orphan():
    elsewhere = instance(created_at=t("04-01 00:00"), terminated_at=t("04-02 00:00"), deleted_at=t("04-02 00:00"))
    result = run([elsewhere], specs=[{"instance_uuid": "i1", "spec": spec(hint="R1")}])
    assert reasons(result) == {"1": "orphan"}
    assert result.rejected.filter(pl.col("rejection_reason") == "orphan")["hours"].to_list() == [24.0]


def test_null_terminated_at_and_late_deleted_at_end_at_the_terminate_event():
    late = instance(terminated_at=None, deleted_at=t("03-04 00:00"))
    result = run([late], action_rows=[{"id": 5, "instance_uuid": "i1", "action": "delete",
                                       "start_time": t("03-01 11:55")}],
                 event_rows=[{"action_id": 5, "event": "compute_terminate_instance", "start_time": t("03-01 11:55"),
                              "finish_time": t("03-01 12:00"), "result": "Success"}])
    assert spans(result, "occupied") == [("i1", "ondemand", t("03-01 01:00"), t("03-01 12:00"))]


def test_the_first_of_several_terminate_events_ends_the_instance():
    # Only the terminated actions' owners are read (nova_instances._terminate_events); an instance's
    # other actions and another instance's terminate change nothing.
    late = instance(terminated_at=None, deleted_at=t("03-04 00:00"))
    other = instance(id=2, uuid="i2", terminated_at=None, deleted_at=None)
    result = run([late, other], action_rows=[
        {"id": 5, "instance_uuid": "i1", "action": "delete", "start_time": t("03-01 11:55")},
        {"id": 6, "instance_uuid": "i1", "action": "reboot", "start_time": t("03-01 02:00")},
        {"id": 7, "instance_uuid": "i1", "action": "delete", "start_time": t("03-01 09:55")},
        {"id": 8, "instance_uuid": "i2", "action": "delete", "start_time": t("03-01 13:00")}],
        event_rows=[{"action_id": 5, "event": "compute_terminate_instance", "finish_time": t("03-01 12:00"),
                     "result": "Success"},
                    {"action_id": 7, "event": "compute_terminate_instance", "finish_time": t("03-01 10:00"),
                     "result": "Success"},
                    {"action_id": 8, "event": "compute_terminate_instance", "start_time": t("03-01 14:00"),
                     "result": "Success"}])
    assert spans(result, "occupied") == [("i1", "ondemand", t("03-01 01:00"), t("03-01 10:00")),
                                         ("i2", "ondemand", t("03-01 01:00"), t("03-01 14:00"))]


def test_a_row_without_a_node_is_placed_by_the_host_its_events_ran_on():
    # nova_instances.with_placements decides the rules again only when a row has no node; here one
    # has none, and its build event ran on the compute service of h1.
    nodes = compute_nodes({"id": 1, "host": "svc1", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")})
    named = tables(**dict(BASE, compute_nodes=nodes, instances=instances(instance(node=None)),
                          instance_actions=actions({"id": 1, "instance_uuid": "i1", "action": "create",
                                                    "start_time": t("03-01 01:00")}),
                          instance_actions_events=events({"action_id": 1, "event": "compute__do_build_and_run_instance",
                                                          "start_time": t("03-01 01:05"),
                                                          "finish_time": t("03-01 01:10"), "result": "Success"})))
    named["nova.instance_actions_events"] = named["nova.instance_actions_events"].with_columns(host=pl.lit("svc1"))
    result = spans_from_tables(named, site="s", snapshot_time=SNAPSHOT)
    placed = result.spans.filter(pl.col("level") == "occupied")
    assert placed.select("entity_id", "hypervisor_hostname").rows() == [("i1", "h1")]
    assert reasons(result) == {}


def test_failed_terminate_event_does_not_end_the_instance():
    result = run([instance()], action_rows=[{"id": 5, "instance_uuid": "i1", "action": "delete",
                                              "start_time": t("03-01 11:55"), "message": "Error"}],
                 event_rows=[{"action_id": 5, "event": "compute_terminate_instance", "finish_time": t("03-01 12:00"),
                              "result": "Error"}])
    assert spans(result, "occupied")[0][3] == t("03-02 00:00")


def test_running_instance_stays_open_at_the_snapshot():
    result = run([instance(terminated_at=None, deleted_at=None)])
    assert spans(result, "occupied") == [("i1", "ondemand", t("03-01 01:00"), None)]


def test_stop_until_start_is_stopped_and_a_stop_without_start_lasts_to_the_end():
    result = run([instance()], action_rows=[
        {"id": 1, "instance_uuid": "i1", "action": "stop", "start_time": t("03-01 05:00")},
        {"id": 2, "instance_uuid": "i1", "action": "start", "start_time": t("03-01 07:00")},
        {"id": 3, "instance_uuid": "i1", "action": "shelve", "start_time": t("03-01 20:00")}])
    assert spans(result, "stopped") == [("i1", "ondemand", t("03-01 05:00"), t("03-01 07:00")),
                                        ("i1", "ondemand", t("03-01 20:00"), t("03-02 00:00"))]


def test_failed_stop_is_ignored():
    result = run([instance()], action_rows=[
        {"id": 1, "instance_uuid": "i1", "action": "stop", "start_time": t("03-01 05:00")}],
        event_rows=[{"action_id": 1, "event": "compute_stop_instance", "finish_time": t("03-01 05:01"),
                     "result": "Error"}])
    assert spans(result, "stopped") == []


def test_repeated_stops_are_merged_so_stopped_time_is_not_counted_twice():
    result = run([instance()], action_rows=[
        {"id": 1, "instance_uuid": "i1", "action": "pause", "start_time": t("03-01 05:00")},
        {"id": 2, "instance_uuid": "i1", "action": "suspend", "start_time": t("03-01 06:00")},
        {"id": 3, "instance_uuid": "i1", "action": "resume", "start_time": t("03-01 08:00")}])
    stopped = result.spans.filter(pl.col("level") == "stopped")
    hours = stopped.select(((pl.col("end") - pl.col("start")).dt.total_seconds() / 3600).sum()).item()
    assert hours == 3.0
    assert reasons(result, "stopped") == {"2": "duplicate_entity"}


def test_stop_of_an_unknown_instance_is_missing_fk():
    result = run([instance()], action_rows=[{"id": 1, "instance_uuid": "ghost", "action": "stop",
                                             "start_time": t("03-01 05:00")}])
    assert reasons(result, "stopped") == {"1": "missing_fk"}


def test_a_stop_takes_the_first_row_of_its_instance_whatever_the_other_instances():
    # stop_windows looks owners up among the instances that have an action only: the rule is still
    # "the first row of the uuid", and rows without an action (or without a uuid) change nothing.
    owners = pl.DataFrame({
        "entity_id": ["i2", None, "i1", "i1"], "hypervisor_hostname": ["h9", "h8", "h1", "h2"],
        "project_id": ["p2", "p0", "p1", "p1"], "reservation_id": [None, None, "R1", None],
        "booking": ["ondemand", "ondemand", "reservation", "ondemand"], "vcpus": [1.0, 2.0, 3.0, 4.0],
        "memory_mb": [1.0] * 4, "disk_gb": [1.0] * 4,
        "end": [t("03-03 00:00"), None, t("03-02 00:00"), t("03-04 00:00")]}).lazy()
    named = tables(instances=instances(instance()), instance_actions=actions(
        {"id": 1, "instance_uuid": "i1", "action": "stop", "start_time": t("03-01 05:00")},
        {"id": 2, "instance_uuid": "ghost", "action": "pause", "start_time": t("03-01 06:00")}),
        instance_actions_events=events())
    windows = instance_actions.stop_windows(named, owners).collect().sort("source_id")
    assert windows.select("entity_id", "hypervisor_hostname", "reservation_id", "vcpus", "end",
                          "instance_found", "rejection_reason").rows() == [
        ("i1", "h1", "R1", 3.0, t("03-02 00:00"), True, None),
        ("ghost", None, None, None, None, False, "missing_fk")]


def test_kvm_instance_counts_its_own_size_and_a_fraction_of_a_node():
    small = instance(node="kvm1", vcpus=16, memory_mb=4096, root_gb=20, ephemeral_gb=5)
    result = run([small])
    row = result.spans.filter(pl.col("level") == "occupied").row(0, named=True)
    assert (row["nodes"], row["vcpus"], row["memory_mb"], row["disk_gb"], row["gpus"]) == (0.25, 16.0, 4096.0, 25.0, 0.0)


def test_ironic_instance_counts_the_whole_host():
    result = run([instance(vcpus=1)])
    row = result.spans.filter(pl.col("level") == "occupied").row(0, named=True)
    assert (row["nodes"], row["vcpus"]) == (1.0, 48.0)


def test_action_ids_join_their_events_whatever_each_table_stores_them_as():
    # Integer ids are joined as integers (exporter.adapters.common.JOIN_ID); a dump may store one
    # side as text: both are then joined as text, and the same events still count.
    late = instance(terminated_at=None, deleted_at=t("03-04 00:00"))
    action_rows = [{"id": 5, "instance_uuid": "i1", "action": "delete", "start_time": t("03-01 11:55")},
                   {"id": 6, "instance_uuid": "i1", "action": "stop", "start_time": t("03-01 05:00")}]
    event_rows = [{"action_id": 5, "event": "compute_terminate_instance", "finish_time": t("03-01 12:00"),
                   "result": "Success"},
                  {"action_id": 6, "event": "compute_stop_instance", "finish_time": t("03-01 05:01"), "result": "Error"}]
    for text_side in ("nova.instance_actions", "nova.instance_actions_events", None):
        named = tables(**dict(BASE, instances=instances(late), instance_actions=actions(*action_rows),
                              instance_actions_events=events(*event_rows)))
        if text_side is not None:
            column = "id" if text_side == "nova.instance_actions" else "action_id"
            named[text_side] = named[text_side].with_columns(pl.col(column).cast(pl.String))
        result = spans_from_tables(named, site="s", snapshot_time=SNAPSHOT)
        assert spans(result, "occupied") == [("i1", "ondemand", t("03-01 01:00"), t("03-01 12:00"))], text_side
        assert spans(result, "stopped") == [], text_side  # the stop failed (its event's result)


def test_an_instance_with_several_rows_is_placed_by_its_first_source_row_whatever_the_row_order():
    # Several rows with one uuid (a corrupt table): the row order a join hands over varies from run
    # to run, so the row placing the instance is the first in row id order, not by position: source
    # table, then ids that are integers as numbers ("9" before "10", though "10" < "9" as text).
    rows = pl.DataFrame({
        "source_table": ["nova.shadow_instances", "nova.instances", "nova.instances", "nova.instances"],
        "source_id": ["1", "9", "10", "3"],
        "entity_id": ["i1", "i1", "i1", "i2"], "hypervisor_hostname": ["h5", "h9", "h10", "h2"],
        "start": [t("03-01 00:00")] * 4, "end": [t("03-02 00:00")] * 4, "vcpus": [5.0, 9.0, 7.0, 3.0],
        "memory_mb": [1.0] * 4, "disk_gb": [1.0] * 4, "vm_state": ["active"] * 4})
    named = {name: frame.lazy() for name, frame in tables(
        instances=instances(instance()), instance_actions=actions(), instance_actions_events=events()).items()}
    for order in ([0, 1, 2, 3], [1, 0, 3, 2], [3, 2, 1, 0]):
        segments = placement_segments(named, rows[order])
        assert sorted(segments.select("entity_id", "hypervisor_hostname", "vcpus").rows()) == [
            ("i1", "h9", 9.0), ("i2", "h2", 3.0)], order


def test_a_stop_takes_its_instances_first_source_row_whatever_the_row_order():
    # The same rule as the segments' (adapters.common.first_row_each): a twin in the shadow table, and
    # two rows of one uuid in the live table ('9' before '10': row id order), in three arrival orders.
    owners = pl.DataFrame({
        "source_table": ["nova.shadow_instances", "nova.instances", "nova.instances"], "source_id": ["1", "9", "10"],
        "entity_id": ["i1"] * 3, "hypervisor_hostname": ["h5", "h9", "h10"], "project_id": ["p1"] * 3,
        "reservation_id": [None] * 3, "booking": ["ondemand"] * 3, "vcpus": [5.0, 9.0, 7.0],
        "memory_mb": [1.0] * 3, "disk_gb": [1.0] * 3, "end": [t("03-04 00:00")] * 3})
    named = tables(instances=instances(instance()), instance_actions=actions(
        {"id": 1, "instance_uuid": "i1", "action": "stop", "start_time": t("03-01 05:00")}), instance_actions_events=events())
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        windows = instance_actions.stop_windows(named, owners[order].lazy()).collect()
        assert windows.select("hypervisor_hostname", "vcpus").rows() == [("h9", 9.0)], order


def test_an_instance_with_several_rows_is_placed_by_its_first_row():
    # placement_segments keeps each uuid's first row (is_first_distinct, as unique(keep="first") did),
    # and the rows without a uuid are one instance: the first of them.
    rows = pl.DataFrame({
        "entity_id": ["i1", None, "i2", "i1", None], "hypervisor_hostname": ["h1", "h7", "h2", "h9", "h8"],
        "start": [t("03-01 00:00")] * 5, "end": [t("03-02 00:00")] * 5, "vcpus": [1.0, 2.0, 3.0, 4.0, 5.0],
        "memory_mb": [1.0] * 5, "disk_gb": [1.0] * 5, "vm_state": ["active"] * 5})
    named = {name: frame.lazy() for name, frame in tables(
        instances=instances(instance()), instance_actions=actions(), instance_actions_events=events()).items()}
    segments = placement_segments(named, rows)
    assert sorted(segments.select("entity_id", "hypervisor_hostname", "vcpus").rows(),
                  key=lambda row: row[0] or "") == [(None, "h7", 2.0), ("i1", "h1", 1.0), ("i2", "h2", 3.0)]
