"""Nova compute services: host-existence evidence beside compute_nodes (level ``total``) and the
present ``disabled`` flag of each host (the live exporter's disabled-host gauge).

A ``nova-compute`` service row names its service host (``services.host``), never a hypervisor,
so it is joined to every compute node row (live, deleted or archived) with the same ``host`` to
find the ``hypervisor_hostname``, the host identity. The rules (docs/semantics.md, "total"):

- a service whose host has exactly one hypervisor_hostname, not an Ironic one (KVM: one service
  per hypervisor), evidences that host over ``[created_at, deleted_at)``;
- a service fronting several nodes or Ironic nodes (one nova-compute for a fleet) evidences
  none of them alone — the compute nodes stay the node identity: rejected ``shared_service``;
- a service whose host no compute node names is not invented as a host: rejected ``missing_fk``
  and listed in the audit (``services.orphan_hosts``).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.declared import TIMESTAMPS, SourceTable
from exporter.adapters.nova_hosts import host_evidence_rules
from exporter.adapters.host_resources import IRONIC

SERVICES = "nova.services"
COMPUTE_BINARY = "nova-compute"
READS = (
    SourceTable("nova", "services",
                ("id", "host", "binary", "topic", "disabled", "disabled_reason", "forced_down",
                 "last_seen_up", *TIMESTAMPS),
                optional=True, required=("id", "host", "binary", "created_at"),
                description="nova-compute services: host existence (joined through compute_nodes.host) and "
                            "the present disabled flag"),
)
_COLUMNS = {"id": common.ID, "host": common.TEXT, "binary": common.TEXT, "disabled": common.NUMBER,
            "created_at": common.WHEN, "deleted_at": common.WHEN}
_NODE_COLUMNS = {"host": common.TEXT, "hypervisor_hostname": common.TEXT, "hypervisor_type": common.TEXT}


def compute_services(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """The nova-compute rows (other binaries run no hypervisor): id, host, disabled, created_at, deleted_at."""
    rows = common.table_rows(tables, SERVICES, _COLUMNS)
    return rows.filter(pl.col("binary") == COMPUTE_BINARY).drop("binary")


def hypervisors_of_service_hosts(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """host, hypervisor_hostname (null when the host fronts several or Ironic nodes), fronts, hypervisor_type."""
    nodes = common.typed_union(tables, ("nova.compute_nodes", "nova.shadow_compute_nodes"), _NODE_COLUMNS)
    named = nodes.filter(pl.col("host").is_not_null() & (pl.col("hypervisor_hostname").fill_null("") != ""))
    ironic = pl.col("hypervisor_type").str.to_lowercase().eq(IRONIC).any()
    return named.group_by("host").agg(
        pl.col("hypervisor_hostname").n_unique().alias("fronts"),
        pl.col("hypervisor_hostname").first().alias("hypervisor_hostname"),
        pl.col("hypervisor_type").drop_nulls().last().alias("hypervisor_type"),
        ironic.alias("ironic"),
    ).with_columns(
        pl.when((pl.col("fronts") == 1) & ~pl.col("ironic").fill_null(False))
        .then(pl.col("hypervisor_hostname")).alias("hypervisor_hostname")).drop("ironic")


def service_host_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One row per nova-compute service: [created_at, deleted_at) on its hypervisor, with its
    rejection reason. Columns as ``nova_hosts.host_windows`` (no inventory: services have none)."""
    return _service_windows(tables).drop("service_host")


def _service_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    joined = compute_services(tables).join(hypervisors_of_service_hosts(tables), on="host", how="left")
    rules = [("null_start", pl.col("start").is_null()),
             ("missing_fk", pl.col("fronts").is_null()),
             ("shared_service", pl.col("hypervisor_hostname").is_null()),
             *host_evidence_rules()]
    return joined.select(
        pl.lit(SERVICES).alias("source_table"), pl.col("id").alias("source_id"), "hypervisor_hostname",
        "hypervisor_type", pl.col("created_at").alias("start"), pl.col("deleted_at").alias("end"),
        *(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("vcpus", "memory_mb", "disk_gb")),
        pl.lit(False).alias("shadow_twin"), pl.col("host").alias("service_host"), "fronts",
    ).with_columns(common.first_rule_failed(rules)).drop("fronts")


def service_audit(tables: Mapping[str, pl.LazyFrame]) -> dict:
    """For the audit: nova-compute rows, and the service hosts that evidence no host (sorted)."""
    windows = _service_windows(tables).collect()
    hosts = lambda reason: sorted(windows.filter(pl.col("rejection_reason") == reason)  # noqa: E731
                                  .get_column("service_host").drop_nulls().unique().to_list())
    return {"nova_compute_rows": windows.height, "orphan_hosts": hosts("missing_fk"),
            "shared_hosts": hosts("shared_service")}


def disabled_hosts(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """hypervisor_hostname of every host whose live (not deleted) nova-compute service is disabled."""
    windows = service_host_windows(tables).filter(pl.col("rejection_reason").is_null() & pl.col("end").is_null())
    flags = compute_services(tables).select(pl.col("id").alias("source_id"), "disabled")
    return (windows.join(flags, on="source_id").filter(pl.col("disabled").fill_null(0) != 0)
            .select("hypervisor_hostname").unique())


def disabled_by_node_type(tables: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame) -> pl.DataFrame:
    """node_type, value: how many of ``hosts`` (hypervisor_hostname, node_type: the hosts that exist
    now) have a disabled nova-compute service; 0 for a node type with none. Empty when the site
    has no nova-compute row (then the flag is unknown, not 0)."""
    if not compute_services(tables).select(pl.len()).collect().item():
        return pl.DataFrame(schema={"node_type": pl.String, "value": pl.Float64})
    disabled = disabled_hosts(tables).collect().with_columns(pl.lit(1.0).alias("_disabled"))
    return (hosts.select("hypervisor_hostname", "node_type").unique()
            .join(disabled, on="hypervisor_hostname", how="left")
            .group_by("node_type").agg(pl.col("_disabled").fill_null(0.0).sum().alias("value"))
            .sort("node_type"))
