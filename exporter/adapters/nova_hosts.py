"""Nova compute nodes: evidence that a host existed (level ``total``) and its inventory."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.declared import TIMESTAMPS, SourceTable

_COMPUTE_NODE_COLUMNS = (
    "id", "uuid", "host", "hypervisor_hostname", "hypervisor_type", "service_id",
    "vcpus", "memory_mb", "local_gb", "cpu_allocation_ratio", "ram_allocation_ratio",
    "disk_allocation_ratio", *TIMESTAMPS,
)

READS = (
    SourceTable("nova", "compute_nodes", _COMPUTE_NODE_COLUMNS,
                required=("id", "hypervisor_hostname", "created_at"),
                description="one row per hypervisor version; soft-deleted when retired"),
    SourceTable("nova", "shadow_compute_nodes", _COMPUTE_NODE_COLUMNS, optional=True,
                description="archived soft-deleted compute_nodes rows (nova-manage db archive)"),
)

HOST_ROW_COLUMNS = {
    "id": common.ID, "hypervisor_hostname": common.TEXT, "hypervisor_type": common.TEXT,
    "created_at": common.WHEN, "deleted_at": common.WHEN,
    "vcpus": common.NUMBER, "memory_mb": common.NUMBER, "local_gb": common.NUMBER,
}


def host_evidence_rules() -> list[tuple[str, pl.Expr]]:
    """Why a host row cannot evidence a host: checked in order, the first match is the reason."""
    return [
        ("duplicate_entity", pl.col("shadow_twin")),
        *common.start_rules(),
        ("non_finite_inventory", common.non_finite("vcpus", "memory_mb", "disk_gb")),
        ("missing_host", pl.col("hypervisor_hostname").is_null() | (pl.col("hypervisor_hostname") == "")),
        *common.range_rules(),
    ]


def nova_host_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One row per compute_nodes (and shadow_compute_nodes) row: [created_at, deleted_at)."""
    return host_windows(tables, ("nova.compute_nodes", "nova.shadow_compute_nodes"))


def host_windows(tables: Mapping[str, pl.LazyFrame], names: tuple[str, ...]) -> pl.LazyFrame:
    """Host rows of the tables ``names`` as evidence windows, with their rejection reason.

    Output: source_table, source_id, hypervisor_hostname, hypervisor_type, start (created_at),
    end (deleted_at), vcpus, memory_mb, disk_gb, rejection_reason (null when usable).
    """
    rows = common.typed_union(tables, names, HOST_ROW_COLUMNS)
    return rows.select(
        "source_table", pl.col("id").alias("source_id"), "hypervisor_hostname", "hypervisor_type",
        pl.col("created_at").alias("start"), pl.col("deleted_at").alias("end"),
        "vcpus", "memory_mb", pl.col("local_gb").alias("disk_gb"), "shadow_twin",
    ).with_columns(common.first_rule_failed(host_evidence_rules()))


def host_reject_detail() -> pl.Expr:
    """The rejected host row's hostname and raw window, as JSON text."""
    return common.detail_json("hypervisor_hostname", "start", "end")
