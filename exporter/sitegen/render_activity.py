"""How Blazar stores leases/allocations and Nova stores instances, actions and request specs."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

from exporter.sitegen.model import DAY, ROCKY, Instance, Lease, Rng, World
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
    """Leases, reservations, their sub-reservations and allocations, in creation order."""
    leases = sorted(world.leases, key=lambda lease: (lease.created, lease.id))
    allocations = sorted((a for lease in leases for a in lease.allocations), key=lambda a: (a.created, a.id))
    return {
        "blazar.leases": RenderedTable(LEASE_COLS, _lease_rows(leases, world.end, Rng(world.start + 2))),
        "blazar.reservations": RenderedTable(RESERVATION_COLS, _reservation_rows(leases, world.end)),
        "blazar.computehost_reservations": RenderedTable(HOST_RES_COLS, _host_reservation_rows(leases, world.end)),
        "blazar.instance_reservations": RenderedTable(INSTANCE_RES_COLS, _instance_reservation_rows(leases, world.end)),
        "blazar.computehost_allocations": RenderedTable(ALLOCATION_COLS, (
            (a.id, a.row.id, a.lease.reservation_id, a.created, a.deleted or a.created,
             blazar_deleted(a.id, a.deleted), a.deleted) for a in allocations)),
    }


def _changed(lease: Lease, snapshot: int) -> int:
    """updated_at: the last status change not after the snapshot."""
    return max(t for t in (lease.created, lease.start, lease.end, lease.deleted or 0) if t <= snapshot)


def _lease_rows(leases: list[Lease], snapshot: int, rng: Rng) -> Iterator[tuple]:
    for lease in leases:
        status, _ = lease_status(lease, snapshot)
        yield (lease.id, lease.name, lease.user_id, lease.project_id, lease.start, lease.end, rng.uuid(), status,
               int(lease.degraded), lease.created, _changed(lease, snapshot), blazar_deleted(lease.id, lease.deleted),
               lease.deleted)


def _reservation_rows(leases: list[Lease], snapshot: int) -> Iterator[tuple]:
    for lease in leases:
        _, status = lease_status(lease, snapshot)
        yield (lease.reservation_id, lease.id, lease.resource_id, lease.resource_type, status, int(lease.degraded),
               0, lease.created, _changed(lease, snapshot), blazar_deleted(lease.reservation_id, lease.deleted),
               lease.deleted)


def _host_reservation_rows(leases: list[Lease], snapshot: int) -> Iterator[tuple]:
    for index, lease in enumerate(leases, start=1):
        if lease.slot is None:
            node_type = lease.allocations[0].host.node_type.name if lease.allocations else ""
            yield (lease.resource_id, lease.reservation_id, index, f"{lease.amount}-{lease.amount}",
                   json.dumps(["==", "$node_type", node_type]), "", "default", "default", lease.created,
                   _changed(lease, snapshot), blazar_deleted(lease.resource_id, lease.deleted), lease.deleted)


def _instance_reservation_rows(leases: list[Lease], snapshot: int) -> Iterator[tuple]:
    for index, lease in enumerate(leases, start=1):
        if lease.slot is not None:
            vcpus, memory, disk = lease.slot
            yield (lease.resource_id, lease.reservation_id, vcpus, memory, disk, lease.amount, 0, "",
                   lease.reservation_id, index, None, lease.created, _changed(lease, snapshot),
                   blazar_deleted(lease.resource_id, lease.deleted), lease.deleted)


def _instance_state(inst: Instance, snapshot: int) -> tuple[str, int, int | None, int | None]:
    """vm_state, power_state, terminated_at, deleted_at (None = not set)."""
    if inst.end is not None:
        if inst.late_delete_days:
            return "deleted", 0, None, inst.end + inst.late_delete_days * DAY
        return "deleted", 0, inst.end, inst.end
    if inst.launched is None:
        return "error", 0, None, None
    if inst.vm_state is not None:  # a KVM lifecycle left it shelved, offloaded or resized
        return inst.vm_state, 1 if inst.vm_state == "resized" else 4, None, None
    stopped = any(stop <= snapshot and (restart is None) for stop, restart in inst.stops)
    return ("stopped", 4, None, None) if stopped else ("active", 1, None, None)


def render_instances(world: World, flavor_ids: dict[str, int]) -> Rendered:
    """Instances (ids in creation order), their actions + events, and request specs."""
    ordered = sorted(world.instances, key=lambda i: (i.created, i.uuid))
    return {
        "nova.instances": RenderedTable(INSTANCE_COLS, _instance_rows(ordered, world.end, flavor_ids)),
        "nova.instance_actions": RenderedTable(ACTION_COLS, _action_rows(ordered, Rng(world.start + 3))),
        "nova.instance_actions_events": RenderedTable(EVENT_COLS, _event_rows(ordered)),
        "nova_api.request_specs": RenderedTable(SPEC_COLS, (
            (inst.created, None, row_id, inst.uuid, request_spec(inst, flavor_ids))
            for row_id, inst in enumerate(ordered, start=1))),
    }


def _instance_rows(ordered: list[Instance], snapshot: int, flavor_ids: dict[str, int]) -> Iterator[tuple]:
    for row_id, inst in enumerate(ordered, start=1):
        vm_state, power, terminated, deleted_at = _instance_state(inst, snapshot)
        # shelve-offload NULLs host and node; a deleted offloaded row keeps them NULL
        host = inst.host if inst.node_recorded and inst.vm_state != "shelved_offloaded" else None
        touched = max(t for t in (inst.created, inst.launched or 0, terminated or 0, deleted_at or 0,
                                  *(a.finish or a.start for a in inst.actions)))
        name = f"instance-{row_id}"
        service = host.service_host if host else None
        yield (row_id, inst.user_id, inst.project_id, "image-" + inst.uuid[:8], 0, "default", power, vm_state,
               None, inst.memory_mb, inst.vcpus, inst.disk_gb, 0, name, service, host.hostname if host else None,
               flavor_ids.get(inst.flavor_name, 1), f"r-{inst.uuid[:8]}", inst.relaunched or inst.launched,
               terminated, "nova", name,
               service, 0, inst.uuid, 0, 0, inst.created, touched, deleted_at, nova_deleted(row_id, deleted_at))


def _action_rows(ordered: list[Instance], rng: Rng) -> Iterator[tuple]:
    action_id = 0
    for inst in ordered:
        for action in inst.actions:
            action_id += 1
            yield (action_id, action.action, inst.uuid, "req-" + rng.uuid(), action.user_id, action.project_id,
                   action.start, None, "Error" if action.result == "Error" else None, action.start,
                   action.finish, None, 0)


def _event_rows(ordered: list[Instance]) -> Iterator[tuple]:
    action_id = event_id = 0
    for inst in ordered:
        for action in inst.actions:
            action_id += 1
            for name, start, finish, event_host in _events_of(inst, action):
                event_id += 1
                traceback = "Traceback (most recent call last):\n  ...\n" if action.result == "Error" else None
                yield (event_id, name, action_id, start, finish, action.result, traceback,
                       event_host, None, start, finish, None, 0)


def _events_of(inst: Instance, action) -> list[tuple[str, int, int | None, str | None]]:
    """(event, start_time, finish_time, service host) of one action's events.

    ``instance_actions_events.host`` is written since Rocky only (NULL before).
    """
    if action.events:
        return [(e.name, e.start, e.finish, e.service_host if e.start >= ROCKY else None) for e in action.events]
    if not action.event:
        return []
    host = inst.host_at(action.start) if inst.node_recorded and action.start >= ROCKY else None
    return [(action.event, action.start + 1, action.finish, host.service_host if host else None)]


_SPEC = ('{{"nova_object.name": "RequestSpec", "nova_object.namespace": "nova", "nova_object.version": "1.12", '
         '"nova_object.data": {{"instance_uuid": {uuid}, "project_id": {project}, "user_id": {user}, '
         '"num_instances": 1, "availability_zone": null, "is_bfv": false, "scheduler_hints": {hints}, '
         '"flavor": {flavor}, "numa_topology": null, "pci_requests": null, "instance_group": null, '
         '"force_hosts": null, "force_nodes": null, "ignore_hosts": null, "security_groups": null}}, '
         '"nova_object.changes": ["scheduler_hints"]}}')


def request_spec(inst: Instance, flavor_ids: dict[str, int]) -> str:
    """The RequestSpec primitive as Nova stores it (JSON text).

    physical:host instances carry the scheduler hint ``reservation: [<id>]`` with the public
    ``baremetal`` flavor; flavor:instance ones use Blazar's private ``reservation:<id>`` flavor.
    """
    hinted = inst.reservation_id and not inst.flavor_name.startswith("reservation:")
    hints = json.dumps({"reservation": [inst.reservation_id]}) if hinted else "{}"
    flavor = flavor_json(inst.flavor_name, flavor_ids.get(inst.flavor_name, 1), inst.vcpus, inst.memory_mb,
                          inst.disk_gb)
    return _SPEC.format(uuid=json.dumps(inst.uuid), project=json.dumps(inst.project_id),
                        user=json.dumps(inst.user_id), hints=hints, flavor=flavor)


@functools.lru_cache(maxsize=4096)
def flavor_json(name: str, flavor_id: int, vcpus: int, memory_mb: int, disk_gb: int) -> str:
    extra_specs = {}
    if name.startswith("reservation:"):
        reservation = name.split(":", 1)[1]
        extra_specs = {"aggregate_instance_extra_specs:reservation": reservation,
                       f"resources:CUSTOM_RESERVATION_{reservation.upper().replace('-', '_')}": "1"}
    return json.dumps({
        "nova_object.name": "Flavor", "nova_object.namespace": "nova", "nova_object.version": "1.2",
        "nova_object.data": {"id": flavor_id, "name": name, "flavorid": name.split(":")[-1], "vcpus": vcpus,
                             "memory_mb": memory_mb, "root_gb": disk_gb, "ephemeral_gb": 0, "swap": 0,
                             "rxtx_factor": 1.0, "vcpu_weight": 0, "disabled": False,
                             "is_public": not extra_specs, "extra_specs": extra_specs, "description": None},
        "nova_object.changes": ["extra_specs"]})


def broken_rows(world: World, quirks: frozenset[str], counts: dict[str, int]) -> dict[str, list[tuple]]:
    """Spurious rows no real event produced (appended after the real ones); each must be rejected.

    Two instances (NULL created_at; terminated before created), a lease ending before it
    starts (with its reservation and an allocation), an allocation whose reservation does not
    exist and one whose host does not exist.
    """
    if "broken_rows" not in quirks or not world.hosts:
        return {}
    rng = Rng(world.start + 4)
    live_rows = [row for h in world.hosts for inc in h.incarnations for row in inc.blazar
                 if not blazar_row_purged(row, quirks)]
    host = world.hosts[0]
    when = world.start + 30 * DAY
    next_id = len(world.instances) + 1
    instances = []
    for offset, (created, terminated) in enumerate(((None, when + DAY), (when + 2 * DAY, when))):
        row_id = next_id + offset
        instances.append((row_id, "broken", "broken", None, 0, None, 0, "deleted", None, 1, 1, 1, 0, "broken",
                          host.service_host, host.hostname, 1, "r-broken", when, terminated, "nova", "broken", None,
                          0, rng.uuid(), 0, 0, created, None, when + 3 * DAY, row_id))
    lease_id, res_id = rng.uuid(), rng.uuid()
    real_res = world.leases[0].reservation_id if world.leases else res_id
    host_id = live_rows[0].id if live_rows else "0"
    allocations = [(rng.uuid(), compute_host_id, reservation_id, when, when, None, None)
                   for compute_host_id, reservation_id in ((host_id, res_id), (host_id, rng.uuid()),
                                                           (rng.uuid(), real_res))]
    counts["broken_rows"] = len(instances) + 1 + len(allocations)
    return {
        "nova.instances": instances,
        "blazar.leases": [(lease_id, "broken-lease", "broken", "broken", when + DAY, when, None, "ERROR", 0, when,
                           when, None, None)],
        "blazar.reservations": [(res_id, lease_id, rng.uuid(), "physical:host", "error", 0, 0, when, when, None,
                                 None)],
        "blazar.computehost_allocations": allocations,
    }
