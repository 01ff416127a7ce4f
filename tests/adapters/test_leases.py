"""Committed and maintenance windows: allocation ⋈ reservation ⋈ lease ⋈ Blazar host."""

from __future__ import annotations

import json

import polars as pl

from exporter.reconstruct.pipeline import spans_from_tables
from tests.adapters.tables import (
    SNAPSHOT, allocations, compute_nodes, computehosts, leases, reservations, t, tables,
)

HOSTS = dict(
    compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                                {"id": 2, "hypervisor_hostname": "h2", "created_at": t("01-01 00:00")}),
    computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                              {"id": "8", "hypervisor_hostname": "h2", "created_at": t("01-01 00:00")}),
)


def run(lease_rows, allocation_rows, reservation_rows=None, *, hosts=None, projects=("maintenance",)):
    reservation_rows = reservation_rows or [{"id": "R1", "lease_id": "L1"}]
    named = dict(hosts or HOSTS, leases=leases(*lease_rows), reservations=reservations(*reservation_rows),
                 computehost_allocations=allocations(*allocation_rows))
    return spans_from_tables(tables(**named), site="s", snapshot_time=SNAPSHOT, maintenance_projects=projects)


def windows(result, level="committed"):
    spans = result.spans.filter(pl.col("level") == level).sort("start")
    return [(r["source_id"], r["hypervisor_hostname"], r["start"], r["end"]) for r in spans.iter_rows(named=True)]


def reasons(result):
    return dict(result.rejected.filter(pl.col("level").is_in(["committed", "maintenance"]))
                .select("source_id", "rejection_reason").iter_rows())


LEASE = {"id": "L1", "start_date": t("03-01 00:00"), "end_date": t("03-05 00:00")}


def test_advance_booking_starts_at_lease_start_not_at_allocation_creation():
    result = run([LEASE], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("02-20 00:00"),
                            "deleted_at": t("03-05 00:00")}])
    assert windows(result) == [("A1", "h1", t("03-01 00:00"), t("03-05 00:00"))]


def test_early_deleted_lease_stops_at_its_deletion():
    lease = {**LEASE, "deleted_at": t("03-02 12:00")}
    result = run([lease], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("02-20 00:00")}])
    assert windows(result) == [("A1", "h1", t("03-01 00:00"), t("03-02 12:00"))]


def test_reallocation_moves_the_window_to_the_new_host_at_the_reallocation():
    result = run([LEASE], [
        {"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("02-20 00:00"),
         "deleted_at": t("03-03 00:00")},
        {"id": "A2", "compute_host_id": "8", "reservation_id": "R1", "created_at": t("03-03 00:00")}])
    assert windows(result) == [("A1", "h1", t("03-01 00:00"), t("03-03 00:00")),
                               ("A2", "h2", t("03-03 00:00"), t("03-05 00:00"))]


def test_leases_of_maintenance_projects_are_maintenance_not_committed():
    lease = {**LEASE, "project_id": "ops"}
    result = run([lease], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("02-20 00:00")}],
                 projects=("ops",))
    assert windows(result) == []
    assert windows(result, "maintenance") == [("A1", "h1", t("03-01 00:00"), t("03-05 00:00"))]


def test_allocation_created_after_lease_end_was_never_effective():
    result = run([LEASE], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("03-06 00:00")}])
    assert reasons(result) == {"A1": "never_effective"}


def test_lease_ending_before_it_starts_is_an_invalid_time_range():
    lease = {**LEASE, "end_date": t("02-01 00:00")}
    result = run([lease], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("01-20 00:00")}])
    assert reasons(result) == {"A1": "invalid_time_range"}


def test_dangling_ids_are_missing_fk_and_say_which_join_failed():
    result = run([LEASE], [
        {"id": "A1", "compute_host_id": "7", "reservation_id": "nope", "created_at": t("02-20 00:00")},
        {"id": "A2", "compute_host_id": "99", "reservation_id": "R1", "created_at": t("02-20 00:00")}],
        reservation_rows=[{"id": "R1", "lease_id": "L1"}])
    assert reasons(result) == {"A1": "missing_fk", "A2": "missing_fk"}
    details = {r["source_id"]: json.loads(r["rejection_detail"]) for r in result.rejected.iter_rows(named=True)}
    assert details["A1"]["reservation_found"] == "false"
    assert details["A2"]["host_found"] == "false" and details["A2"]["lease_found"] == "true"


def test_committed_is_clipped_into_reservable_and_the_cut_recorded():
    hosts = dict(HOSTS, computehosts=computehosts(
        {"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00"), "deleted_at": t("03-03 00:00")}))
    result = run([LEASE], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("02-20 00:00")}],
                 hosts=hosts)
    span = result.spans.filter(pl.col("level") == "committed").row(0, named=True)
    assert (span["end"], span["original_end"], span["hierarchy_status"]) == (t("03-03 00:00"), t("03-05 00:00"), "clipped")
    clipped = [c for c in result.audit["clipped"] if c["level"] == "committed"]
    assert [(c["reason"], c["hours"]) for c in clipped] == [("outside_parent", 48.0)]


def test_lease_running_past_the_snapshot_is_cut_there_and_a_future_one_rejected():
    running = {"id": "L1", "start_date": t("12-30 00:00"), "end_date": t("12-31 12:00").replace(year=2021)}
    future = {"id": "L2", "start_date": t("01-10 00:00").replace(year=2021), "end_date": t("02-10 00:00").replace(year=2021)}
    result = run([running, future], [
        {"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("12-01 00:00")},
        {"id": "A2", "compute_host_id": "8", "reservation_id": "R2", "created_at": t("12-01 00:00")}],
        reservation_rows=[{"id": "R1", "lease_id": "L1"}, {"id": "R2", "lease_id": "L2"}])
    assert windows(result) == [("A1", "h1", t("12-30 00:00"), SNAPSHOT)]
    assert reasons(result) == {"A2": "after_snapshot"}
    after = [c for c in result.audit["clipped"] if c["level"] == "committed" and c["reason"] == "after_snapshot"]
    assert sum(c["hours"] for c in after) == 365 * 24 + 12


def test_reserved_host_counts_the_whole_host_with_its_gpus():
    result = run([LEASE], [{"id": "A1", "compute_host_id": "7", "reservation_id": "R1", "created_at": t("02-20 00:00")}])
    span = result.spans.filter(pl.col("level") == "committed").row(0, named=True)
    assert (span["nodes"], span["vcpus"], span["pool"]) == (1.0, 48.0, "reservable")
    assert (span["lease_id"], span["reservation_id"], span["project_id"]) == ("L1", "R1", "p1")
