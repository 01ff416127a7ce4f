"""Which row the reconstruction takes must not follow the order its rows arrive in (docs/semantics.md)."""

from __future__ import annotations

import itertools

import polars as pl

from exporter.columns import BOOKING_RESERVATION
from exporter.reconstruct import inference
from exporter.reconstruct.pipeline import spans_from_tables
from tests.adapters.tables import SNAPSHOT, actions, compute_nodes, events, instances, t, tables
from tests.adapters.test_instances import BASE, instance


def test_a_commitment_whose_lease_is_gone_takes_its_earliest_instances_project_in_any_row_order():
    # Three reserved instances of one reservation on one host, from two projects: the earliest (by
    # start) is p1's: two start together, where the first in row id order wins ("9" before "10", ids
    # compared as numbers).
    instances = pl.DataFrame({
        "source_table": ["nova.instances"] * 3, "source_id": ["9", "10", "3"],
        "project_id": ["p1", "p2", "p3"], "start": [t("01-01 00:00"), t("01-01 00:00"), t("01-02 00:00")],
        "end": [t("01-03 00:00")] * 3, "reservation_id": ["r1"] * 3, "hypervisor_hostname": ["h1"] * 3,
        "booking": [BOOKING_RESERVATION] * 3, "rejection_reason": [None] * 3,
        "vcpus": [1.0] * 3, "memory_mb": [1.0] * 3, "disk_gb": [1.0] * 3})
    for order in itertools.permutations(range(3)):
        made = inference.commitments(instances[list(order)], {}, maintenance_projects=())
        assert made.get_column("project_id").to_list() == ["p1"], order


def test_stops_at_one_moment_are_merged_into_the_lower_action_id_in_any_row_order():
    # Two stops of i1 requested at one moment: one stopped span, named by action 5 (5 < 12 as
    # numbers, though "12" < "5" as text); action 12 is the duplicate.
    stop = {"instance_uuid": "i1", "action": "stop", "start_time": t("03-01 05:00")}
    acted = actions({"id": 12, **stop}, {"id": 5, **stop},
                    {"id": 7, "instance_uuid": "i1", "action": "start", "start_time": t("03-01 09:00")})
    for order in itertools.permutations(range(3)):
        named = dict(BASE, instances=instances(instance()), instance_actions=acted[list(order)],
                     instance_actions_events=events())
        result = spans_from_tables(tables(**named), site="s", snapshot_time=SNAPSHOT)
        stopped = result.spans.filter(pl.col("level") == "stopped")
        assert stopped.select("source_id", "start", "end").rows() == [("5", t("03-01 05:00"), t("03-01 09:00"))], order
        duplicates = result.rejected.filter(pl.col("level") == "stopped")
        assert duplicates.select("source_id", "rejection_reason").rows() == [("12", "duplicate_entity")], order


def test_host_rows_with_one_window_are_merged_into_the_lower_row_id_in_any_row_order():
    # A duplicated compute node record: rows 10 and 9 of h1 with one window, row 3 overlapping them.
    # Row 9 (9 < 10 as numbers, though "10" < "9" as text) keeps January; 10 is the duplicate; row 3
    # keeps the rest of its time.
    nodes = compute_nodes(
        {"id": 10, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00"), "deleted_at": t("02-01 00:00")},
        {"id": 9, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00"), "deleted_at": t("02-01 00:00")},
        {"id": 3, "hypervisor_hostname": "h1", "created_at": t("01-15 00:00"), "deleted_at": t("03-01 00:00")})
    for order in itertools.permutations(range(3)):
        result = spans_from_tables(tables(compute_nodes=nodes[list(order)]), site="s", snapshot_time=SNAPSHOT)
        total = result.spans.filter(pl.col("level") == "total").sort("start")
        assert total.select("source_id", "start", "end").rows() == [
            ("9", t("01-01 00:00"), t("02-01 00:00")), ("3", t("02-01 00:00"), t("03-01 00:00"))], order
        duplicates = result.rejected.filter(pl.col("level") == "total")
        assert duplicates.select("source_id", "rejection_reason").rows() == [("10", "duplicate_entity")], order
