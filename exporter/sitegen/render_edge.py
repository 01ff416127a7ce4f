"""An edge world as Blazar's device plugin and Zun store it (rows with epoch-second times).

Losses written on purpose (docs/synthetic-site.md): devices retired before May 2022 and their
capabilities have no row; explicitly deleted containers have no row, actions or events (Zun's
cascade); device allocations are soft-deleted at lease end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from exporter.sitegen.edge import MACHINES, Container, DeviceLease, EdgeWorld
from exporter.sitegen.edge_truth import absent
from exporter.sitegen.model import Rng
from exporter.sitegen.render import Rendered, RenderedTable, blazar_deleted
from exporter.sitegen.render_activity import LEASE_COLS, RESERVATION_COLS

RESERVATION_ANNOTATION = "zun.openstack.org/reservation_id"  # ChameleonCloud/zun zun/common/utils.py
CAPABILITIES = ("machine_name", "vendor", "model", "platform_version")  # what doni's device worker sets
_VENDOR = {name: (vendor, model) for name, vendor, model, _ in MACHINES}


def render_edge(world: EdgeWorld, capability_schema: str) -> Rendered:
    leases = sorted(world.leases, key=lambda lease: (lease.created, lease.id))
    names, capabilities = _capability_rows(world, capability_schema)
    name_table = "blazar.resource_properties" if capability_schema == "property_id" else "blazar.extra_capabilities"
    name_key = "property_name" if capability_schema == "property_id" else "capability_name"
    name_column = "property_id" if capability_schema == "property_id" else "capability_id"
    actions, events = _actions(leases, world.end)
    return {
        "blazar.devices": RenderedTable(
            ("id", "name", "device_type", "device_driver", "reservable", "created_at", "updated_at", "deleted",
             "deleted_at"), list(_device_rows(world))),
        name_table: RenderedTable(("id", "resource_type", name_key, "private", "is_unique", "created_at"), names),
        "blazar.device_extra_capabilities": RenderedTable(
            ("id", "device_id", name_column, "capability_value", "created_at", "updated_at", "deleted", "deleted_at"),
            capabilities),
        "blazar.leases": RenderedTable(LEASE_COLS, list(_lease_rows(leases, world.end))),
        "blazar.reservations": RenderedTable(RESERVATION_COLS, list(_reservation_rows(leases, world.end))),
        "blazar.device_reservations": RenderedTable(
            ("id", "reservation_id", "count_range", "resource_properties", "before_end", "created_at", "updated_at"),
            [(l.device_reservation_id, l.reservation_id, f"{len(l.devices)}-{len(l.devices)}", "", "default",
              l.created, l.created) for l in leases]),
        "blazar.device_allocations": RenderedTable(
            ("id", "device_id", "reservation_id", "created_at", "updated_at", "deleted", "deleted_at"),
            list(_allocation_rows(leases, world.end))),
        "zun.container": RenderedTable(
            ("id", "uuid", "project_id", "user_id", "name", "image", "cpu", "memory", "disk", "status", "host",
             "hostname", "started_at", "container_type", "annotations", "auto_remove", "created_at", "updated_at"),
            [_container_row(c, lease) for lease in leases for c in lease.containers
             if not c.hard_deleted and c.created < world.end]),
        "zun.container_actions": RenderedTable(
            ("id", "action", "container_uuid", "request_id", "user_id", "project_id", "start_time", "finish_time",
             "message", "created_at", "updated_at"), actions),
        "zun.container_actions_events": RenderedTable(
            ("id", "event", "action_id", "start_time", "finish_time", "result", "created_at", "updated_at"), events),
    }


def _device_rows(world: EdgeWorld) -> Iterator[tuple]:
    for device in world.devices:
        if absent(device):
            continue
        updated = device.unreservable_since or device.retired or device.created
        yield (device.id, device.name, "container", device.driver, 0 if device.unreservable_since else 1,
               device.created, updated, blazar_deleted(device.id, device.retired), device.retired)


def _capability_rows(world: EdgeWorld, schema: str) -> tuple[list[tuple], list[tuple]]:
    rng = Rng(f"edge-capabilities:{world.start}")
    name_ids = {name: rng.uuid() if schema == "property_id" else str(number)
                for number, name in enumerate(CAPABILITIES, start=1)}
    names = [(name_ids[name], "device", name, 0, 0, world.start) for name in CAPABILITIES]
    rows = []
    for device in world.devices:
        if absent(device):
            continue
        vendor, model = _VENDOR[device.machine]
        values = (device.machine, vendor, model, "2" if device.driver == "k8s" else "1")
        for name, value in zip(CAPABILITIES, values):
            row_id = rng.uuid()
            rows.append((row_id, device.id, name_ids[name], value, device.created, device.created,
                         blazar_deleted(row_id, device.retired), device.retired))
    return names, rows


def _status(lease: DeviceLease, snapshot: int) -> tuple[str, str]:
    if lease.end <= snapshot:
        return "TERMINATED", "deleted"
    return ("ACTIVE", "active") if lease.start <= snapshot else ("PENDING", "pending")


def _lease_rows(leases: list[DeviceLease], snapshot: int) -> Iterator[tuple]:
    for number, lease in enumerate(leases):
        status, _ = _status(lease, snapshot)
        updated = max(t for t in (lease.created, lease.start, lease.end) if t <= snapshot)
        yield (lease.id, f"edge-lease-{number}", f"user-{lease.project}", lease.project, lease.start, lease.end,
               None, status, 0, lease.created, updated, None, None)


def _reservation_rows(leases: list[DeviceLease], snapshot: int) -> Iterator[tuple]:
    for lease in leases:
        _, status = _status(lease, snapshot)
        yield (lease.reservation_id, lease.id, lease.device_reservation_id, "device", status, 0, 0, lease.created,
               lease.created, None, None)


def _allocation_rows(leases: list[DeviceLease], snapshot: int) -> Iterator[tuple]:
    for lease in leases:
        ended = lease.end if lease.end <= snapshot else None  # on_end soft-deletes them
        for device, allocation in zip(lease.devices, lease.allocation_ids):
            yield (allocation, device.id, lease.reservation_id, lease.created, ended or lease.created,
                   blazar_deleted(allocation, ended), ended)


def _container_row(container: Container, lease: DeviceLease) -> tuple:
    annotations = json.dumps({RESERVATION_ANNOTATION: lease.reservation_id})
    return (container.id, container.uuid, lease.project, f"user-{lease.project}", f"ctr-{container.id}",
            "python:3.11-slim", 1.0, "512", 0, container.status, "edge-k3s", f"ctr-{container.id}",
            container.created + 20, 0, annotations, 0, container.created, container.updated)


def _actions(leases: list[DeviceLease], snapshot: int) -> tuple[list[tuple], list[tuple]]:
    actions, events = [], []
    steps = []
    for lease in leases:
        for c in lease.containers:
            if c.hard_deleted or c.created >= snapshot:
                continue
            steps.append((c.created, "create", "compute__do_container_create", c, lease))
            for stop, resume in c.stops:
                steps.append((stop, "stop", "compute__do_container_stop", c, lease))
                if resume is not None:
                    steps.append((resume, "start", "compute__do_container_start", c, lease))
    for number, (when, action, event, c, lease) in enumerate(sorted(steps, key=lambda s: (s[0], s[3].id)), start=1):
        actions.append((number, action, c.uuid, f"req-{number}", f"user-{lease.project}", lease.project, when,
                        when + 5, None, when, when + 5))
        events.append((number, event, number, when, when + 5, "Success", when, when + 5))
    return actions, events
