"""Archive-only tables: copied into snapshots when present, not (yet) turned into spans.

Nothing is lost if a later adapter wants them: Chameleon's ``openstack_audit`` trigger tables
(every INSERT/UPDATE/DELETE of a watched source row, as a JSON ``data`` snapshot) and the
instances Nova buried in cell0 (failed scheduling, never consumed capacity). All are optional.
(The CHI@Edge tables are read by exporter.adapters.blazar_devices and zun_containers.)
"""

from __future__ import annotations

from exporter.adapters import nova_instances
from exporter.adapters.declared import SourceTable, archive_only

_AUDIT_COLUMNS = ("audit_id", "id", "audit_event_type", "audit_event_time", "audit_changed_by",
                  "audit_changed_at", "data")
# audit_blazar_computehosts is read by exporter.adapters.blazar_flag (the reservable flag's history)
_AUDITED = (
    "blazar_computehost_extra_capabilities", "blazar_resource_properties",
    "blazar_leases", "blazar_reservations", "blazar_computehost_allocations", "blazar_computehost_reservations",
    "blazar_instance_reservations", "blazar_devices", "blazar_device_allocations", "blazar_device_reservations",
    "blazar_device_extra_capabilities", "nova_compute_nodes", "nova_services", "nova_instances",
    "nova_instance_actions", "nova_instance_actions_events", "ironic_nodes",
)


def _audit_table(source: str) -> SourceTable:
    return SourceTable("openstack_audit", f"audit_{source}", _AUDIT_COLUMNS, primary_key="audit_id",
                       optional=True, description=f"trigger audit of {source.replace('_', '.', 1)}")


# cell0 instances have the cell1 columns (one cell schema)
_CELL_INSTANCE_COLUMNS = next(s.columns for s in nova_instances.READS if s.name == "nova.instances")

READS = archive_only((
    *(_audit_table(source) for source in _AUDITED),
    SourceTable("nova_cell0", "instances", _CELL_INSTANCE_COLUMNS, optional=True,
                description="instances that failed scheduling (never on a host)"),
))
