"""Blazar hosts: evidence that a host was reservable, plus node_type and GPUs from capabilities."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.nova_hosts import host_windows
from exporter.columns import UNKNOWN_NODE_TYPE
from exporter.adapters.declared import TIMESTAMPS, SourceTable

READS = (
    SourceTable("blazar", "computehosts",
                ("id", "hypervisor_hostname", "service_name", "hypervisor_type", "vcpus",
                 "memory_mb", "local_gb", "status", "reservable", "disabled", *TIMESTAMPS),
                required=("id", "hypervisor_hostname", "created_at"),
                description="Blazar-enrolled hosts; deleted_at reliable only since mid-2022"),
    SourceTable("blazar", "computehost_extra_capabilities",
                ("id", "computehost_id", "capability_name", "capability_id", "property_id",
                 "capability_value", *TIMESTAMPS),
                required=("computehost_id", "capability_value"),
                description="host capabilities (node_type, gpu.*); three name schemas over time"),
    SourceTable("blazar", "resource_properties",
                ("id", "resource_type", "property_name", *TIMESTAMPS), optional=True,
                description="capability names (upstream >= Yoga, Chameleon since 2024)"),
    SourceTable("blazar", "extra_capabilities",
                ("id", "resource_type", "capability_name", *TIMESTAMPS), optional=True,
                description="capability names (Chameleon 2020-2024)"),
)

NODE_TYPE_CAPABILITY = "node_type"
# The capability holding a host's GPU count (Chameleon's flattened reference-API key first).
GPU_COUNT_CAPABILITIES = ("gpu.gpu_count", "gpu_count")


def blazar_host_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One row per computehosts row: [created_at, deleted_at), as ``nova_host_windows``."""
    return host_windows(tables, ("blazar.computehosts",))


def named_capabilities(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """computehost_id, name, value, created_at, source_id (the row's id): one row per capability row,
    in any of the 3 schemas.

    The name is the row's own ``capability_name`` (oldest schema), else the name behind
    ``capability_id`` (extra_capabilities, Chameleon 2020-2024), else behind ``property_id``
    (resource_properties). Rows whose name cannot be resolved get a null name.
    """
    caps = common.table_rows(tables, "blazar.computehost_extra_capabilities", {
        "id": common.ID, "computehost_id": common.ID, "capability_name": common.TEXT, "capability_id": common.ID,
        "property_id": common.ID, "capability_value": common.TEXT, "created_at": common.WHEN,
        "updated_at": common.WHEN,
    })
    caps = caps.join(common.names_by_id(tables, "blazar.extra_capabilities", "capability_name", "by_capability_id"),
                     left_on="capability_id", right_on="name_id", how="left")
    caps = caps.join(common.names_by_id(tables, "blazar.resource_properties", "property_name", "by_property_id"),
                     left_on="property_id", right_on="name_id", how="left")
    return caps.select(
        "computehost_id",
        pl.coalesce("capability_name", "by_capability_id", "by_property_id").alias("name"),
        pl.col("capability_value").str.strip_chars().alias("value"),
        pl.coalesce("updated_at", "created_at").alias("created_at"),
        pl.col("id").alias("source_id"),
    )


def host_attributes(host_windows: pl.LazyFrame, capabilities: pl.LazyFrame) -> pl.LazyFrame:
    """hypervisor_hostname, node_type, gpus: one row per hostname seen in Blazar.

    Per hostname the newest non-empty value wins: the newest computehosts row first (equal times:
    the higher id), then its newest capability row (equal times: the higher row id), then the
    larger value; ids in ``common.id_order`` (docs/semantics.md). No node_type capability ->
    "unknown"; no GPU count -> 0. A GPU value that is not a finite number >= 0 ("nan", "inf",
    "-1", "two") is no GPU count: an older valid one wins.
    """
    count = pl.col("value").cast(pl.Float64, strict=False)
    gpu_count = pl.col("name").is_in(GPU_COUNT_CAPABILITIES) & count.is_finite() & (count >= 0)
    hosts = host_windows.select(
        pl.col("source_id").alias("computehost_id"), "hypervisor_hostname", pl.col("start").alias("host_created"))
    found = (
        capabilities.filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
        .join(hosts, on="computehost_id", how="inner")
        # a total order: rows written at one moment must not leave the choice to the join's row order
        .sort("host_created", *common.id_order("computehost_id"), "created_at", *common.id_order("source_id"),
              "value", nulls_last=False)
        .group_by("hypervisor_hostname")
        .agg(
            pl.col("value").filter(pl.col("name") == NODE_TYPE_CAPABILITY).last().alias("node_type"),
            count.filter(gpu_count).last().alias("gpus"),
        )
    )
    return found.select(
        "hypervisor_hostname",
        pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE),
        pl.col("gpus").fill_null(0.0),
    )
