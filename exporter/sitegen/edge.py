"""CHI@Edge: a fleet of small devices enrolled in Blazar's device plugin, reserved through device
leases and used by Zun containers (k8s pods) that run on them. Plain records, deterministic.

What the simulation decides and the databases later lose (docs/synthetic-site.md, "Edge"):
- devices join over the first part of the history and some retire; a device retired before
  Blazar's device tables had soft delete (May 2022) leaves no row at all;
- leases reserve one device (most) or several; maintenance leases hold one device;
- containers run on one device of their reservation each; explicitly deleted containers are
  hard-deleted by Zun (row, actions and events gone); containers still there at lease end are
  removed with their lease (edge_zun.py: gone too, or kept ``Deleted`` without the
  ``zun_auto_remove`` quirk); some stop (and start again), some actions fail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from exporter.sitegen.edge_zun import EDGE_QUIRKS, apply_zun_fates
from exporter.sitegen.model import DAY, HOUR, MINUTE, Rng, ts

DEVICE_SOFT_DELETE_SINCE = ts(dt.datetime(2022, 5, 1))  # devices/capabilities: soft delete from here on
MAINTENANCE_PROJECT = "maintenance"
# (machine_name capability, vendor, model, weight): doni's supported machine names
MACHINES = (
    ("raspberrypi4-64", "Raspberry Pi", "4 Model B", 4.0),
    ("jetson-nano", "Nvidia", "Jetson Nano", 2.0),
    ("raspberrypi3-64", "Raspberry Pi", "3 Model B+", 1.0),
    ("jetson-xavier-nx-emmc", "Nvidia", "Jetson Xavier NX", 1.0),
)


@dataclass(slots=True)
class Device:
    id: str
    name: str
    machine: str
    driver: str
    created: int
    retired: int | None = None
    unreservable_since: int | None = None  # the k8s plugin marked it unreservable (still so now)


@dataclass(slots=True)
class Container:
    id: int
    uuid: str
    device: Device  # where it really ran (the databases never say)
    created: int
    end: int  # when it stopped holding the device (may lie after the snapshot)
    stops: list[tuple[int, int | None]] = field(default_factory=list)  # stopped windows
    hard_deleted: bool = False  # deleted explicitly: Zun dropped its row and actions
    removed: bool = False  # removed with its lease before the snapshot (zun_auto_remove): row and actions gone
    stop_actions: list[tuple[str, str]] = field(default_factory=list)  # (stop, resume) action of each stop
    failed: list[tuple[int, str]] = field(default_factory=list)  # (when, action) requests that failed
    status: str = "Running"  # the row's final status
    updated: int = 0

    @property
    def kept(self) -> bool:
        """Zun still holds its row and actions: neither deleted explicitly nor removed with its lease."""
        return not (self.hard_deleted or self.removed)


@dataclass(slots=True)
class DeviceLease:
    id: str
    reservation_id: str
    device_reservation_id: str
    project: str
    created: int
    start: int
    end: int
    devices: list[Device]
    allocation_ids: list[str]
    containers: list[Container] = field(default_factory=list)

    @property
    def maintenance(self) -> bool:
        return self.project == MAINTENANCE_PROJECT


@dataclass
class EdgeWorld:
    start: int
    end: int
    devices: list[Device]
    leases: list[DeviceLease]


def simulate_edge(rng: Rng, *, devices: int, start: int, end: int,
                  quirks: frozenset[str] = frozenset(EDGE_QUIRKS)) -> EdgeWorld:
    """Devices, their leases and containers over [start, end); ``quirks``: edge_zun.EDGE_QUIRKS enabled."""
    fleet = _devices(rng.side("devices"), devices, start, end)
    leases = _leases(rng.side("leases"), fleet, start, end)
    counter = iter(range(1, 10**9))
    for lease in leases:
        lease.containers = _containers(rng.side(lease.id), lease, counter, end)
    apply_zun_fates(rng.side("zun"), leases, end, quirks)
    return EdgeWorld(start=start, end=end, devices=fleet, leases=leases)


def _devices(rng: Rng, count: int, start: int, end: int) -> list[Device]:
    span = end - start
    weights = [m[3] for m in MACHINES]
    out = []
    for number in range(count):
        machine = rng.choices(MACHINES, weights)[0][0]
        created = start if number < count // 3 else start + rng.between(0, span * 0.6)
        device = Device(id=rng.uuid(), name=f"edge-{machine.split('-')[0][:6]}-{number:02d}", machine=machine,
                        driver="zun" if created < DEVICE_SOFT_DELETE_SINCE - 120 * DAY else "k8s", created=created)
        early = created < DEVICE_SOFT_DELETE_SINCE
        if rng.random() < (0.4 if early else 0.2):  # retires some time after joining
            retired = created + (rng.between(30 * DAY, 300 * DAY) if early else rng.between(60 * DAY, span))
            device.retired = retired if retired < end else None
        out.append(device)
    live = [d for d in out if d.retired is None]
    if live:  # one device failing now: the plugin set reservable = 0 a while ago
        live[-1].unreservable_since = end - rng.between(2 * DAY, 20 * DAY)
    return out


def _alive(device: Device, t0: int, t1: int) -> bool:
    stop = min(x for x in (device.retired, device.unreservable_since, 1 << 62) if x is not None)
    return device.created <= t0 and t1 <= stop


def _leases(rng: Rng, fleet: list[Device], start: int, end: int) -> list[DeviceLease]:
    free_from = {d.id: d.created for d in fleet}
    leases = []
    t = start
    while True:
        t += rng.between(2 * HOUR, 14 * HOUR)
        if t >= end:
            return leases
        maintenance = rng.random() < 0.03
        duration = rng.between(1 * DAY, 3 * DAY) if maintenance else rng.choice(
            (rng.between(2 * HOUR, 12 * HOUR), rng.between(1 * DAY, 7 * DAY)))
        lead = 0 if rng.random() < 0.6 else rng.between(MINUTE, 2 * DAY)
        begin, finish = t + lead, t + lead + duration
        wanted = 1 if maintenance or rng.random() < 0.8 else rng.choice((2, 2, 3))
        chosen = [d for d in fleet if _alive(d, begin, finish) and free_from[d.id] <= begin]
        if len(chosen) < wanted:
            continue
        picked = rng.sample(chosen, wanted)
        for device in picked:
            free_from[device.id] = finish
        leases.append(DeviceLease(
            id=rng.uuid(), reservation_id=rng.uuid(), device_reservation_id=rng.uuid(),
            project=MAINTENANCE_PROJECT if maintenance else f"project-{rng.randrange(40):02d}",
            created=t, start=begin, end=finish, devices=picked, allocation_ids=[rng.uuid() for _ in picked]))


def _containers(rng: Rng, lease: DeviceLease, counter, snapshot: int) -> list[Container]:
    if lease.maintenance or lease.start >= snapshot or rng.random() < 0.15:  # never used (yet)
        return []
    out = []
    # one container per device mostly; sometimes one for a multi-device lease, sometimes two in a row
    targets = list(lease.devices) if rng.random() < 0.7 else [lease.devices[0]]
    for device in targets:
        begin = lease.start + rng.between(MINUTE, min(3 * HOUR, (lease.end - lease.start) // 3))
        for _ in range(1 if rng.random() < 0.85 else 2):
            if begin >= min(lease.end - 10 * MINUTE, snapshot):
                break
            container = _one_container(rng, lease, device, begin, next(counter), snapshot)
            out.append(container)
            if container.end is None or container.end >= lease.end:
                break
            begin = container.end + rng.between(MINUTE, HOUR)
    return out


def _one_container(rng: Rng, lease: DeviceLease, device: Device, begin: int, number: int,
                   snapshot: int) -> Container:
    container = Container(id=number, uuid=rng.uuid(), device=device, created=begin, end=lease.end)
    fate = rng.random()
    if fate < 0.35:  # the user deletes it: Zun hard-deletes the row with its actions
        container.end = begin + rng.between(10 * MINUTE, max(11 * MINUTE, lease.end - begin))
        container.end = min(container.end, lease.end)
        container.hard_deleted = True
    elif fate < 0.45:  # crashes: status Error at updated_at, the row stays
        container.end = begin + rng.between(MINUTE, max(2 * MINUTE, lease.end - begin))
        container.end = min(container.end, lease.end)
        container.status, container.updated = "Error", container.end
    if rng.random() < 0.25:
        stop_at = begin + rng.between(MINUTE, max(2 * MINUTE, container.end - begin))
        resume = stop_at + rng.between(10 * MINUTE, 2 * DAY) if rng.random() < 0.5 else None
        if stop_at < min(container.end, snapshot):
            container.stops.append((stop_at, resume if resume is not None and resume < min(container.end, snapshot)
                                    else None))
    if container.end >= snapshot:  # whatever happens later, at the snapshot it is still there
        container.hard_deleted = False
        container.status = "Stopped" if container.stops and container.stops[-1][1] is None else "Running"
        container.updated = max(begin, snapshot - rng.between(60, HOUR))
    elif not container.hard_deleted and container.status != "Error":
        # still there at lease end: the k8s driver removes the pod, Zun notices at its next sync
        container.status, container.updated = "Deleted", min(lease.end + rng.between(30, 10 * MINUTE), snapshot - 1)
    return container
