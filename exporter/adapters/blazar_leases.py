"""Blazar leases, reservations and allocations: committed and maintenance windows per host."""

from __future__ import annotations

from exporter.sources import TIMESTAMPS, SourceTable

READS = (
    SourceTable("blazar", "leases",
                ("id", "name", "user_id", "project_id", "start_date", "end_date", "status",
                 *TIMESTAMPS),
                required=("id", "start_date", "end_date"),
                description="leases; start/end at minute precision; deleted_at = early deletion"),
    SourceTable("blazar", "reservations",
                ("id", "lease_id", "resource_id", "resource_type", "status", *TIMESTAMPS),
                required=("id", "lease_id")),
    SourceTable("blazar", "computehost_allocations",
                ("id", "compute_host_id", "reservation_id", *TIMESTAMPS),
                required=("id", "compute_host_id", "reservation_id"),
                description="host<->reservation; soft-deleted at lease end or on reallocation"),
    SourceTable("blazar", "instance_reservations",
                ("id", "reservation_id", "vcpus", "memory_mb", "disk_gb", "amount", "affinity",
                 *TIMESTAMPS),
                optional=True, description="per-slot resources of virtual/flavor:instance reservations"),
)
