"""Blazar leases, reservations and allocations: committed and maintenance windows per host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from exporter.adapters import common
from exporter.columns import LEVEL_COMMITTED, LEVEL_MAINTENANCE
from exporter.adapters.declared import TIMESTAMPS, ChildOf, SourceTable

# Blazar changes a reservation or allocation on its own (status, reallocation): the live exporter
# scans these tables; the relation only says which lease a row belongs to.
OF_RESERVATION = ChildOf("blazar.reservations", "id", "reservation_id")

READS = (
    SourceTable("blazar", "leases",
                ("id", "name", "user_id", "project_id", "start_date", "end_date", "status",
                 *TIMESTAMPS),
                required=("id", "start_date", "end_date"), spans_end=("end_date", "deleted_at"),
                description="leases; start/end at minute precision; deleted_at = early deletion"),
    SourceTable("blazar", "reservations",
                ("id", "lease_id", "resource_id", "resource_type", "status", *TIMESTAMPS),
                required=("id", "lease_id"), child_of=ChildOf("blazar.leases", "id", "lease_id")),
    SourceTable("blazar", "computehost_allocations",
                ("id", "compute_host_id", "reservation_id", *TIMESTAMPS),
                required=("id", "compute_host_id", "reservation_id"), child_of=OF_RESERVATION,
                spans_end=("deleted_at",),
                description="host<->reservation; soft-deleted at lease end or on reallocation"),
    SourceTable("blazar", "instance_reservations",
                ("id", "reservation_id", "vcpus", "memory_mb", "disk_gb", "amount", "affinity",
                 *TIMESTAMPS),
                optional=True, child_of=OF_RESERVATION,
                description="per-slot resources of virtual/flavor:instance reservations"),
)

ALLOCATIONS = "blazar.computehost_allocations"


def allocation_windows(tables: Mapping[str, pl.LazyFrame], *, maintenance_projects: Sequence[str]) -> pl.LazyFrame:
    """One row per allocation with its effective window and level, or why it has none.

    Window = [max(lease.start_date, allocation.created_at),
              min(lease.end_date, lease.deleted_at, allocation.deleted_at)).
    Output: source_table, source_id, entity_id, hypervisor_hostname, project_id, lease_id,
    reservation_id, resource_id, start, end, level, rejection_reason, lease_start, lease_end,
    lease_created, lease_deleted, allocation_created, allocation_deleted.
    """
    joined = (
        _allocations(tables)
        .join(_reservations(tables), on="reservation_id", how="left")
        .join(_leases(tables), on="lease_id", how="left")
        .join(_host_names(tables), on="compute_host_id", how="left")
        .with_columns(pl.col("reservation_found", "lease_found", "host_found").fill_null(False))
    )
    windowed = joined.with_columns(
        pl.max_horizontal("lease_start", "allocation_created").alias("start"),
        pl.min_horizontal("lease_end", "lease_deleted", "allocation_deleted").alias("end"),
        pl.when(pl.col("project_id").is_in(list(maintenance_projects)))
        .then(pl.lit(LEVEL_MAINTENANCE)).otherwise(pl.lit(LEVEL_COMMITTED)).alias("level"),
    )
    return windowed.with_columns(common.first_rule_failed(allocation_rules()))


def allocation_rules() -> list[tuple[str, pl.Expr]]:
    """Why an allocation carries no committed window (first match wins)."""
    return [
        ("missing_fk", ~pl.col("reservation_found") | ~pl.col("lease_found") | ~pl.col("host_found")),
        ("null_start", pl.col("lease_start").is_null()),
        ("implausible_time", common.implausible_time("start", "end")),
        ("invalid_time_range", pl.col("lease_end") < pl.col("lease_start")),
        ("never_effective", pl.col("end") <= pl.col("start")),
    ]


def allocation_reject_detail() -> pl.Expr:
    """Which join failed and the original timestamps, as JSON text."""
    return common.detail_json(
        "reservation_id", "reservation_found", "lease_id", "lease_found", "compute_host_id", "host_found",
        "lease_start", "lease_end", "lease_deleted", "allocation_created", "allocation_deleted")


def _allocations(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    rows = common.table_rows(tables, ALLOCATIONS, {
        "id": common.ID, "compute_host_id": common.ID, "reservation_id": common.ID,
        "created_at": common.WHEN, "deleted_at": common.WHEN})
    return rows.select(
        pl.lit(ALLOCATIONS).alias("source_table"), pl.col("id").alias("source_id"),
        pl.col("id").alias("entity_id"), "compute_host_id", "reservation_id",
        pl.col("created_at").alias("allocation_created"), pl.col("deleted_at").alias("allocation_deleted"))


def reservation_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """reservation_id, lease_id, resource_id, resource_type, reservation_found: one row per reservation."""
    return _reservations(tables)


def lease_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """lease_id, project_id, lease_start, lease_end, lease_deleted, lease_found: one row per lease."""
    return _leases(tables)


def _reservations(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    rows = common.table_rows(tables, "blazar.reservations", {
        "id": common.ID, "lease_id": common.ID, "resource_id": common.ID, "resource_type": common.TEXT})
    return rows.unique("id", keep="first").select(
        pl.col("id").alias("reservation_id"), "lease_id", "resource_id", "resource_type",
        pl.lit(True).alias("reservation_found"))


def _leases(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    rows = common.table_rows(tables, "blazar.leases", {
        "id": common.ID, "project_id": common.TEXT, "start_date": common.WHEN, "end_date": common.WHEN,
        "created_at": common.WHEN, "deleted_at": common.WHEN})
    return rows.unique("id", keep="first").select(
        pl.col("id").alias("lease_id"), "project_id", pl.col("start_date").alias("lease_start"),
        pl.col("end_date").alias("lease_end"), pl.col("created_at").alias("lease_created"),
        pl.col("deleted_at").alias("lease_deleted"), pl.lit(True).alias("lease_found"))


def _host_names(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    rows = common.table_rows(tables, "blazar.computehosts", {"id": common.ID, "hypervisor_hostname": common.TEXT})
    return rows.filter(pl.col("hypervisor_hostname").is_not_null()).unique("id", keep="first").select(
        pl.col("id").alias("compute_host_id"), "hypervisor_hostname", pl.lit(True).alias("host_found"))


def with_slots(windows: pl.LazyFrame, slots: pl.LazyFrame) -> pl.LazyFrame:
    """Allocation windows + their reservation's slot size; a non-finite slot size rejects the row."""
    bad_slot = common.non_finite("slot_vcpus", "slot_memory_mb", "slot_disk_gb").fill_null(False)
    return windows.join(slots, on="reservation_id", how="left").with_columns(
        pl.coalesce("rejection_reason", pl.when(bad_slot).then(pl.lit("non_finite_inventory"))).alias("rejection_reason"))


def reservation_slices(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """reservation_id, slot_vcpus, slot_memory_mb, slot_disk_gb for virtual/flavor:instance reservations."""
    if "blazar.instance_reservations" not in tables:
        return common.typed(pl.LazyFrame(), {"reservation_id": common.ID, "slot_vcpus": common.NUMBER,
                                             "slot_memory_mb": common.NUMBER, "slot_disk_gb": common.NUMBER})
    rows = common.table_rows(tables, "blazar.instance_reservations", {
        "reservation_id": common.ID, "vcpus": common.NUMBER, "memory_mb": common.NUMBER, "disk_gb": common.NUMBER})
    return rows.filter(pl.col("reservation_id").is_not_null()).unique("reservation_id", keep="first").select(
        "reservation_id", pl.col("vcpus").alias("slot_vcpus"), pl.col("memory_mb").alias("slot_memory_mb"),
        pl.col("disk_gb").alias("slot_disk_gb"))
