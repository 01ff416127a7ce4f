"""Nova compute nodes: evidence that a host existed (level ``total``) and its inventory."""

from __future__ import annotations

from exporter.sources import TIMESTAMPS, SourceTable

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
    SourceTable("nova", "services",
                ("id", "host", "binary", "topic", "disabled", "disabled_reason", "forced_down",
                 "last_seen_up", *TIMESTAMPS),
                optional=True, description="nova-compute services (context only)"),
)
