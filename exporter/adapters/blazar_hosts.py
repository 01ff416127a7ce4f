"""Blazar hosts: evidence that a host was reservable, plus node_type and GPUs from capabilities."""

from __future__ import annotations

from exporter.sources import TIMESTAMPS, SourceTable

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
