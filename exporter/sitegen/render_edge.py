"""An edge world as Blazar's device plugin and Zun store it (rows with epoch-second times).

Losses written on purpose (docs/synthetic-site.md): devices retired before May 2022 and their
capabilities have no row; explicitly deleted containers and those removed with their ended
lease (edge_zun.py) have no row, actions or events (Zun's cascade); device allocations are
soft-deleted at lease end. ``container.host`` and ``auto_remove`` are what the device's driver writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from exporter.sitegen.edge import MACHINES, Container, DeviceLease, EdgeWorld
from exporter.sitegen.edge_truth import absent
from exporter.sitegen.edge_zun import K8S_HOST
from exporter.sitegen.model import Rng
from exporter.sitegen.render import Rendered, RenderedTable, blazar_deleted
from exporter.sitegen.render_activity import LEASE_COLS, RESERVATION_COLS

RESERVATION_ANNOTATION = "zun.openstack.org/reservation_id"  # ChameleonCloud/zun zun/common/utils.py
CAPABILITIES = ("machine_name", "vendor", "model", "platform_version")  # what doni's device worker sets
_VENDOR = {name: (vendor, model) for name, vendor, model, _ in MACHINES}


def render_edge(world: EdgeWorld, capability_schema: str, quirks: frozenset[str]) -> Rendered:
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
            [_container_row(c, lease, "zun_auto_remove" in quirks) for lease in leases for c in lease.containers
             if _has_row(c, world.end)]),
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


def _has_row(container: Container, snapshot: int) -> bool:
    return container.kept and container.created < snapshot


def _container_row(container: Container, lease: DeviceLease, auto_remove: bool) -> tuple:
    annotations = json.dumps({RESERVATION_ANNOTATION: lease.reservation_id})
    k8s = container.device.driver == "k8s"
    # zun devices were each their own zun-compute (host = the device's name, auto_remove the user's
    # choice: off); the k8s driver writes its zun-compute's host and sets auto_remove on every container
    host = K8S_HOST if k8s else container.device.name
    return (container.id, container.uuid, lease.project, f"user-{lease.project}", f"ctr-{container.id}",
            "python:3.11-slim", 1.0, "512", 0, container.status, host, f"ctr-{container.id}",
            container.created + 20, 0, annotations, int(k8s and auto_remove), container.created, container.updated)


def _actions(leases: list[DeviceLease], snapshot: int) -> tuple[list[tuple], list[tuple]]:
    actions, events = [], []
    steps = []
    for lease in leases:
        for c in lease.containers:
            if not _has_row(c, snapshot):
                continue
            steps.append((c.created, "create", c, lease, True))
            kinds = c.stop_actions or [("stop", "start")] * len(c.stops)
            for (stop, resume), (stop_action, resume_action) in zip(c.stops, kinds):
                steps.append((stop, stop_action, c, lease, True))
                if resume is not None:
                    steps.append((resume, resume_action, c, lease, True))
            steps.extend((when, action, c, lease, False) for when, action in c.failed)
    for number, (when, action, c, lease, ok) in enumerate(sorted(steps, key=lambda s: (s[0], s[2].id)), start=1):
        # a failed request: Zun writes message 'Error' on the action and result 'Error' on its event
        actions.append((number, action, c.uuid, f"req-{number}", f"user-{lease.project}", lease.project, when,
                        when + 5, None if ok else "Error", when, when + 5))
        events.append((number, f"compute__do_container_{action}", number, when, when + 5,
                       "Success" if ok else "Error", when, when + 5))
    return actions, events
