"""How Blazar stores leases/allocations and Nova stores instances, actions and request specs."""

from __future__ import annotations

import json

from exporter.sitegen.model import DAY, ROCKY, Instance, Lease, Rng, World, to_dt
from exporter.sitegen.render import (
    Rendered,
    RenderedTable,
    blazar_deleted,
    blazar_row_purged,
    nova_deleted,
)

LEASE_COLS = ("id", "name", "user_id", "project_id", "start_date", "end_date", "trust_id", "status",
              "degraded", "created_at", "updated_at", "deleted", "deleted_at")
RESERVATION_COLS = ("id", "lease_id", "resource_id", "resource_type", "status", "missing_resources",
                    "resources_changed", "created_at", "updated_at", "deleted", "deleted_at")
ALLOCATION_COLS = ("id", "compute_host_id", "reservation_id", "created_at", "updated_at", "deleted", "deleted_at")
HOST_RES_COLS = ("id", "reservation_id", "aggregate_id", "count_range", "resource_properties",
                 "hypervisor_properties", "before_end", "on_start", "created_at", "updated_at", "deleted",
                 "deleted_at")
INSTANCE_RES_COLS = ("id", "reservation_id", "vcpus", "memory_mb", "disk_gb", "amount", "affinity",
                     "resource_properties", "flavor_id", "aggregate_id", "server_group_id", "created_at",
                     "updated_at", "deleted", "deleted_at")
INSTANCE_COLS = ("id", "user_id", "project_id", "image_ref", "launch_index", "key_name", "power_state",
                 "vm_state", "task_state", "memory_mb", "vcpus", "root_gb", "ephemeral_gb", "hostname", "host",
                 "node", "instance_type_id", "reservation_id", "launched_at", "terminated_at",
                 "availability_zone", "display_name", "launched_on", "locked", "uuid", "cleaned", "hidden",
                 "created_at", "updated_at", "deleted_at", "deleted")
ACTION_COLS = ("id", "action", "instance_uuid", "request_id", "user_id", "project_id", "start_time",
               "finish_time", "message", "created_at", "updated_at", "deleted_at", "deleted")
EVENT_COLS = ("id", "event", "action_id", "start_time", "finish_time", "result", "traceback", "host",
              "details", "created_at", "updated_at", "deleted_at", "deleted")
SPEC_COLS = ("created_at", "updated_at", "id", "instance_uuid", "spec")


def lease_status(lease: Lease, snapshot: int) -> tuple[str, str]:
    """(lease status, reservation status) as Chameleon leaves them at the snapshot."""
    if lease.deleted is not None:  # Chameleon quirk: deleted leases stay DELETING
        return "DELETING", "active" if lease.start <= lease.deleted else "pending"
    if lease.end <= snapshot:
        return "TERMINATED", "deleted"
    if lease.start <= snapshot:
        return "ACTIVE", "active"
    return "PENDING", "pending"


def render_leases(world: World) -> Rendered:
    rng = Rng(world.start + 2)
    leases, reservations, host_res, inst_res, allocations = [], [], [], [], []
    for index, lease in enumerate(sorted(world.leases, key=lambda l: (l.created, l.id)), start=1):
        status, res_status = lease_status(lease, world.end)
        changed = min(world.end, max(t for t in (lease.created, lease.start, lease.end, lease.deleted or 0)
                                     if t <= world.end))
        deleted = blazar_deleted(lease.id, lease.deleted)
        leases.append((lease.id, lease.name, lease.user_id, lease.project_id, to_dt(lease.start),
                       to_dt(lease.end), rng.uuid(), status, int(lease.degraded), to_dt(lease.created),
                       to_dt(changed), deleted, to_dt(lease.deleted)))
        reservations.append((lease.reservation_id, lease.id, lease.resource_id, lease.resource_type, res_status,
                             int(lease.degraded), 0, to_dt(lease.created), to_dt(changed),
                             blazar_deleted(lease.reservation_id, lease.deleted), to_dt(lease.deleted)))
        if lease.slot is None:
            node_type = lease.allocations[0].host.node_type.name if lease.allocations else ""
            host_res.append((lease.resource_id, lease.reservation_id, index, f"{lease.amount}-{lease.amount}",
                             json.dumps(["==", "$node_type", node_type]), "", "default", "default",
                             to_dt(lease.created), to_dt(changed),
                             blazar_deleted(lease.resource_id, lease.deleted), to_dt(lease.deleted)))
        else:
            vcpus, memory, disk = lease.slot
            inst_res.append((lease.resource_id, lease.reservation_id, vcpus, memory, disk, lease.amount, 0,
                             "", lease.reservation_id, index, None, to_dt(lease.created), to_dt(changed),
                             blazar_deleted(lease.resource_id, lease.deleted), to_dt(lease.deleted)))
        for alloc in lease.allocations:
            allocations.append((alloc.id, alloc.row.id, lease.reservation_id, to_dt(alloc.created),
                                to_dt(alloc.deleted or alloc.created), blazar_deleted(alloc.id, alloc.deleted),
                                to_dt(alloc.deleted)))
    allocations.sort(key=lambda r: (r[3], r[0]))
    return {
        "blazar.leases": RenderedTable(LEASE_COLS, leases),
        "blazar.reservations": RenderedTable(RESERVATION_COLS, reservations),
        "blazar.computehost_reservations": RenderedTable(HOST_RES_COLS, host_res),
        "blazar.instance_reservations": RenderedTable(INSTANCE_RES_COLS, inst_res),
        "blazar.computehost_allocations": RenderedTable(ALLOCATION_COLS, allocations),
    }


def _instance_state(inst: Instance, snapshot: int) -> tuple[str, int, int | None, int | None]:
    """vm_state, power_state, terminated_at, deleted_at (None = not set)."""
    if inst.end is not None:
        if inst.late_delete_days:
            return "deleted", 0, None, inst.end + inst.late_delete_days * DAY
        return "deleted", 0, inst.end, inst.end
    if inst.launched is None:
        return "error", 0, None, None
    stopped = any(stop <= snapshot and (restart is None) for stop, restart in inst.stops)
    return ("stopped", 4, None, None) if stopped else ("active", 1, None, None)


def render_instances(world: World, flavor_ids: dict[str, int]) -> Rendered:
    rng = Rng(world.start + 3)
    instances, actions, events, specs = [], [], [], []
    ordered = sorted(world.instances, key=lambda i: (i.created, i.uuid))
    for row_id, inst in enumerate(ordered, start=1):
        vm_state, power, terminated, deleted_at = _instance_state(inst, world.end)
        host = inst.host if inst.node_recorded else None
        touched = max(t for t in (inst.created, inst.launched or 0, terminated or 0, deleted_at or 0,
                                  *(a.finish or a.start for a in inst.actions)))
        name = f"instance-{row_id}"
        instances.append((
            row_id, inst.user_id, inst.project_id, "image-" + inst.uuid[:8], 0, "default", power, vm_state,
            None, inst.memory_mb, inst.vcpus, inst.disk_gb, 0, name, host.service_host if host else None,
            host.hostname if host else None, flavor_ids.get(inst.flavor_name, 1), f"r-{inst.uuid[:8]}",
            to_dt(inst.launched), to_dt(terminated), "nova", name, host.service_host if host else None, 0,
            inst.uuid, 0, 0, to_dt(inst.created), to_dt(touched), to_dt(deleted_at),
            nova_deleted(row_id, deleted_at),
        ))
        specs.append((to_dt(inst.created), None, row_id, inst.uuid, request_spec(inst, flavor_ids)))
        for action in inst.actions:
            action_id = len(actions) + 1
            actions.append((action_id, action.action, inst.uuid, "req-" + rng.uuid(), action.user_id,
                            action.project_id, to_dt(action.start), None,
                            "Error" if action.result == "Error" else None, to_dt(action.start),
                            to_dt(action.finish), None, 0))
            if action.event:
                event_host = host.service_host if host and action.start >= ROCKY else None
                events.append((len(events) + 1, action.event, action_id, to_dt(action.start + 1),
                               to_dt(action.finish), action.result,
                               "Traceback (most recent call last):\n  ...\n" if action.result == "Error" else None,
                               event_host, None, to_dt(action.start + 1), to_dt(action.finish), None, 0))
    return {
        "nova.instances": RenderedTable(INSTANCE_COLS, instances),
        "nova.instance_actions": RenderedTable(ACTION_COLS, actions),
        "nova.instance_actions_events": RenderedTable(EVENT_COLS, events),
        "nova_api.request_specs": RenderedTable(SPEC_COLS, specs),
    }


def request_spec(inst: Instance, flavor_ids: dict[str, int]) -> str:
    """The RequestSpec primitive as Nova stores it (hint for physical:host reservations)."""
    hints = {"reservation": [inst.reservation_id]} if inst.reservation_id and inst.flavor_name == "baremetal" else {}
    flavor = {"nova_object.name": "Flavor", "nova_object.namespace": "nova", "nova_object.version": "1.2",
              "nova_object.data": {"id": flavor_ids.get(inst.flavor_name, 1), "name": inst.flavor_name,
                                   "flavorid": inst.flavor_name.split(":")[-1], "vcpus": inst.vcpus,
                                   "memory_mb": inst.memory_mb, "root_gb": inst.disk_gb, "ephemeral_gb": 0,
                                   "swap": 0, "rxtx_factor": 1.0, "vcpu_weight": 0, "disabled": False,
                                   "is_public": inst.reservation_id is None, "extra_specs": {},
                                   "description": None},
              "nova_object.changes": ["extra_specs"]}
    data = {"instance_uuid": inst.uuid, "project_id": inst.project_id, "user_id": inst.user_id,
            "num_instances": 1, "availability_zone": None, "is_bfv": False, "scheduler_hints": hints,
            "flavor": flavor, "numa_topology": None, "pci_requests": None, "instance_group": None,
            "force_hosts": None, "force_nodes": None, "ignore_hosts": None, "security_groups": None}
    return json.dumps({"nova_object.name": "RequestSpec", "nova_object.namespace": "nova",
                       "nova_object.version": "1.12", "nova_object.data": data,
                       "nova_object.changes": ["scheduler_hints"]}, separators=(", ", ": "))


def add_broken_rows(rendered: Rendered, world: World, quirks: frozenset[str], counts: dict[str, int]) -> None:
    """Spurious rows no real event produced: each must be rejected by a reconstructor."""
    if "broken_rows" not in quirks or not world.hosts:
        return
    rng = Rng(world.start + 4)
    live_rows = [row for h in world.hosts for inc in h.incarnations for row in inc.blazar
                 if not blazar_row_purged(row, quirks)]
    host = world.hosts[0]
    when = world.start + 30 * DAY
    instances = rendered["nova.instances"]
    next_id = len(instances.rows) + 1
    for offset, (created, terminated) in enumerate(((None, when + DAY), (when + 2 * DAY, when))):
        uuid = rng.uuid()
        instances.rows.append((
            next_id + offset, "broken", "broken", None, 0, None, 0, "deleted", None, 1, 1, 1, 0, "broken",
            host.service_host, host.hostname, 1, "r-broken", to_dt(when), to_dt(terminated), "nova", "broken",
            None, 0, uuid, 0, 0, to_dt(created), None, to_dt(when + 3 * DAY), next_id + offset,
        ))
    leases = rendered["blazar.leases"]
    lease_id, res_id = rng.uuid(), rng.uuid()
    leases.rows.append((lease_id, "broken-lease", "broken", "broken", to_dt(when + DAY), to_dt(when), None,
                        "ERROR", 0, to_dt(when), to_dt(when), None, None))
    rendered["blazar.reservations"].rows.append((res_id, lease_id, rng.uuid(), "physical:host", "error", 0, 0,
                                                 to_dt(when), to_dt(when), None, None))
    allocs = rendered["blazar.computehost_allocations"]
    real_res = rendered["blazar.reservations"].rows[0][0] if len(rendered["blazar.reservations"].rows) > 1 else res_id
    host_id = live_rows[0].id if live_rows else "0"
    for compute_host_id, reservation_id in ((host_id, res_id), (host_id, rng.uuid()), (rng.uuid(), real_res)):
        allocs.rows.append((rng.uuid(), compute_host_id, reservation_id, to_dt(when), to_dt(when), None, None))
    counts["broken_rows"] = 2 + 1 + 3
