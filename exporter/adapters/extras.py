"""Archive-only tables: copied into snapshots when present, not (yet) turned into spans.

Nothing is lost if a later adapter wants them: Chameleon's ``openstack_audit`` trigger tables
(every INSERT/UPDATE/DELETE of a watched source row, as a JSON ``data`` snapshot), Zun containers
and their actions (CHI@Edge), Blazar devices and their allocations, and the instances Nova
buried in cell0 (failed scheduling, never consumed capacity). All are optional.
"""

from __future__ import annotations

from exporter.adapters import nova_instances
from exporter.adapters.declared import TIMESTAMPS, SourceTable, archive_only

_AUDIT_COLUMNS = ("audit_id", "id", "audit_event_type", "audit_event_time", "audit_changed_by",
                  "audit_changed_at", "data")
# the first audit deployment stored blazar.computehosts columns as real columns instead of JSON
_EARLY_AUDIT_HOST_COLUMNS = ("hypervisor_hostname", "vcpus", "memory_mb", "local_gb", "status", "reservable",
                             "disabled", "created_at", "deleted_at")
_AUDITED = (
    "blazar_computehosts", "blazar_computehost_extra_capabilities", "blazar_resource_properties",
    "blazar_leases", "blazar_reservations", "blazar_computehost_allocations", "blazar_computehost_reservations",
    "blazar_instance_reservations", "blazar_devices", "blazar_device_allocations", "blazar_device_reservations",
    "blazar_device_extra_capabilities", "nova_compute_nodes", "nova_services", "nova_instances",
    "nova_instance_actions", "nova_instance_actions_events", "ironic_nodes",
)


def _audit_table(source: str) -> SourceTable:
    extra = _EARLY_AUDIT_HOST_COLUMNS if source == "blazar_computehosts" else ()
    return SourceTable("openstack_audit", f"audit_{source}", _AUDIT_COLUMNS + extra, primary_key="audit_id",
                       optional=True, description=f"trigger audit of {source.replace('_', '.', 1)}")


# cell0 instances have the cell1 columns (one cell schema)
_CELL_INSTANCE_COLUMNS = next(s.columns for s in nova_instances.READS if s.name == "nova.instances")
_ZUN_TIMESTAMPS = ("created_at", "updated_at")  # Zun hard-deletes: no deleted/deleted_at

READS = archive_only((
    *(_audit_table(source) for source in _AUDITED),
    # container.environment is left out on purpose: users put secrets there
    SourceTable("zun", "container",
                ("id", "uuid", "project_id", "user_id", "name", "image", "cpu", "memory", "disk", "status",
                 "status_reason", "task_state", "host", "started_at", "container_type", "capsule_id",
                 "annotations", *_ZUN_TIMESTAMPS),
                optional=True, description="Zun containers not explicitly deleted (hard delete otherwise)"),
    SourceTable("zun", "container_actions",
                ("id", "action", "container_uuid", "request_id", "user_id", "project_id", "start_time",
                 "finish_time", "message", *_ZUN_TIMESTAMPS),
                optional=True, description="Zun container actions (create/start/stop/delete ...)"),
    SourceTable("zun", "container_actions_events",
                ("id", "event", "action_id", "start_time", "finish_time", "result", *_ZUN_TIMESTAMPS),
                optional=True, description="Zun action events (no host column)"),
    SourceTable("blazar", "devices",
                ("id", "name", "device_type", "device_driver", "reservable", *TIMESTAMPS),
                optional=True, description="Blazar devices (CHI@Edge, Chameleon fork)"),
    SourceTable("blazar", "device_allocations", ("id", "device_id", "reservation_id", *TIMESTAMPS),
                optional=True, description="device<->reservation; soft-deleted at lease end"),
    SourceTable("blazar", "device_reservations",
                ("id", "reservation_id", "count_range", "resource_properties", "before_end", *TIMESTAMPS),
                optional=True, description="device reservation requests"),
    SourceTable("blazar", "device_extra_capabilities",
                ("id", "device_id", "capability_id", "property_id", "capability_value", *TIMESTAMPS),
                optional=True, description="device capabilities (capability_id renamed property_id in 2024)"),
    SourceTable("nova_cell0", "instances", _CELL_INSTANCE_COLUMNS, optional=True,
                description="instances that failed scheduling (never on a host)"),
))
