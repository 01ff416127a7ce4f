"""The truth of an edge site: what really happened, and what of it the databases can still tell.

Physical truth (truth_spans.parquet, SPAN_SCHEMA): total and reservable (device enrolled),
committed / maintenance (device allocation: lease window; maintenance also while a failing device
is marked unreservable),
occupied (a container held its device: created -> end), stopped (its stopped windows).

Recoverable truth (truth.json ``device_hours_recoverable``), computed here with plain interval
arithmetic, independently of the reconstruction: the same levels without what the databases
lost, and with occupancy by the documented rule the data forces — a device of a reservation is
occupied while any surviving container of that reservation exists, stopped while all of them
are stopped:
- ``retired_before_soft_delete``: devices retired before May 2022 have no row; their surviving
  allocations still show them from their first lease's start to their last lease's end (every
  level there is recoverable), the rest of their life is lost (total, reservable) — all of it for
  a device never leased;
- ``zun_hard_deleted``: explicitly deleted containers have no row (occupied, stopped);
- ``zun_auto_removed``: containers removed with their ended lease (edge_zun.py, quirk
  ``zun_auto_remove``) have no row either (occupied, stopped);
- ``multi_device_rule``: the rule's count minus the physical one for the rest (may be > 0).
"""

from __future__ import annotations

import polars as pl

from exporter.columns import BOOKING_MAINTENANCE, BOOKING_RESERVATION, POOL_RESERVABLE, SPAN_SCHEMA, TIME, conform
from exporter.sitegen.edge import DEVICE_SOFT_DELETE_SINCE, Container, Device, DeviceLease, EdgeWorld

SOURCE = "truth"
LEVELS = ("total", "reservable", "committed", "maintenance", "occupied", "stopped")
Window = tuple[int, int]


def union(windows: list[Window]) -> list[Window]:
    """Disjoint sorted windows covering the same time."""
    out: list[Window] = []
    for start, end in sorted(w for w in windows if w[1] > w[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def clip(windows: list[Window], low: int, high: int) -> list[Window]:
    return [(max(s, low), min(e, high)) for s, e in windows if min(e, high) > max(s, low)]


def seconds(windows: list[Window]) -> int:
    return sum(e - s for s, e in windows)


def absent(device: Device) -> bool:
    """Retired before device rows were soft-deleted: the row is gone."""
    return device.retired is not None and device.retired < DEVICE_SOFT_DELETE_SINCE


def device_levels(device: Device, end: int) -> dict[str, list[Window]]:
    """total and reservable (enrolled), maintenance while marked unreservable (failing)."""
    gone = device.retired if device.retired is not None else end
    failing = [(device.unreservable_since, gone)] if device.unreservable_since is not None else []
    return {"total": clip([(device.created, gone)], 0, end), "reservable": clip([(device.created, gone)], 0, end),
            "maintenance": clip(failing, 0, end)}


def lease_window(lease: DeviceLease, end: int) -> list[Window]:
    return clip([(lease.start, lease.end)], 0, end)


def container_life(container: Container, end: int) -> list[Window]:
    return clip([(container.created, container.end)], 0, end)


def container_stops(container: Container, end: int) -> list[Window]:
    stops = [(s, e if e is not None else container.end) for s, e in container.stops]
    return clip(union(stops), container.created, min(container.end, end))


def rule_occupancy(containers: list[Container], low: int, high: int, end: int) -> tuple[list[Window], list[Window]]:
    """(occupied, stopped) of one device of a reservation by the any-container rule."""
    lives = {c.uuid: clip(container_life(c, end), low, high) for c in containers}
    occupied = union([w for ws in lives.values() for w in ws])
    running = union([w for c in containers for w in _minus(lives[c.uuid], container_stops(c, end))])
    return occupied, _minus(occupied, running)


def _minus(windows: list[Window], holes: list[Window]) -> list[Window]:
    out = []
    for start, end in windows:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                out.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def seen_window(device: Device, leases: list[DeviceLease], end: int) -> list[Window]:
    """What surviving allocations show of a device: its first lease's start to its last one's end."""
    mine = [w for lease in leases if device in lease.devices for w in lease_window(lease, end)]
    return [(min(s for s, _ in mine), max(e for _, e in mine))] if mine else []


def edge_hours(world: EdgeWorld) -> dict[str, dict[str, float]]:
    """Device-hours per level: physical truth, recoverable truth, and the unrecoverable parts."""
    end = world.end
    true = dict.fromkeys(LEVELS, 0)
    gone = {cause: dict.fromkeys(LEVELS, 0)
            for cause in ("retired_before_soft_delete", "zun_hard_deleted", "zun_auto_removed", "multi_device_rule")}
    for device in world.devices:
        seen = seconds(seen_window(device, world.leases, end)) if absent(device) else None
        for level, windows in device_levels(device, end).items():
            true[level] += seconds(windows)
            if seen is not None:  # an absent device is never unreservable (it retired)
                gone["retired_before_soft_delete"][level] += seconds(windows) - (seen if windows else 0)
    for lease in world.leases:
        level = "maintenance" if lease.maintenance else "committed"
        window = lease_window(lease, end)
        true[level] += seconds(window) * len(lease.devices)
        _lease_occupancy(lease, end, true, gone)
    recoverable = {level: true[level] - sum(part[level] for part in gone.values()) for level in LEVELS}
    hours = lambda values: {level: values[level] / 3600 for level in LEVELS}  # noqa: E731
    return {"device_hours": hours(true), "device_hours_recoverable": hours(recoverable),
            "device_hours_unrecoverable": {name: hours(part) for name, part in gone.items()}}


def retired_devices(world: EdgeWorld) -> dict[str, float | int]:
    """The devices retired before soft delete: how many, how many a surviving allocation shows,
    and the total device-hours lost of those (their life outside first-to-last lease)."""
    retired = [d for d in world.devices if absent(d)]
    seen = [(d, seen_window(d, world.leases, world.end)) for d in retired]
    shown = [(d, w) for d, w in seen if w]
    lost = sum(seconds(device_levels(d, world.end)["total"]) - seconds(w) for d, w in shown)
    return {"devices": len(retired), "with_allocations": len(shown), "lost_total_hours_with_allocations": lost / 3600}


def _lease_occupancy(lease: DeviceLease, end: int, true: dict, gone: dict) -> None:
    survivors = [c for c in lease.containers if c.kept]
    for device in lease.devices:
        mine = [c for c in lease.containers if c.device is device]
        physical_occ, physical_stop = _occupancy(mine, end)
        true["occupied"] += physical_occ
        true["stopped"] += physical_stop
        not_user_deleted = _occupancy([c for c in mine if not c.hard_deleted], end)
        kept_occ, kept_stop = _occupancy([c for c in mine if c.kept], end)
        gone["zun_hard_deleted"]["occupied"] += physical_occ - not_user_deleted[0]
        gone["zun_hard_deleted"]["stopped"] += physical_stop - not_user_deleted[1]
        gone["zun_auto_removed"]["occupied"] += not_user_deleted[0] - kept_occ
        gone["zun_auto_removed"]["stopped"] += not_user_deleted[1] - kept_stop
        occupied, stopped = rule_occupancy(survivors, lease.start, lease.end, end)
        gone["multi_device_rule"]["occupied"] += kept_occ - seconds(occupied)
        gone["multi_device_rule"]["stopped"] += kept_stop - seconds(stopped)


def _occupancy(containers: list[Container], end: int) -> tuple[int, int]:
    """(occupied, stopped) seconds of these containers on one device."""
    return (seconds(union([w for c in containers for w in container_life(c, end)])),
            seconds(union([w for c in containers for w in container_stops(c, end)])))


def edge_truth_spans(world: EdgeWorld, *, site: str) -> pl.DataFrame:
    """The physical truth as canonical spans (one per device level window, lease and container)."""
    rows: list[dict] = []

    def add(level: str, device: Device, windows: list[Window], source_id: str, **extra) -> None:
        for start, stop in windows:
            rows.append({"level": level, "source_id": source_id, "entity_id": source_id,
                         "hypervisor_hostname": device.name, "node_type": device.machine, "start": start,
                         "end": None if stop >= world.end else stop, "nodes": 1.0, **extra})

    for device in world.devices:
        for level, windows in device_levels(device, world.end).items():
            add(level, device, windows, device.id, pool=None if level == "total" else POOL_RESERVABLE)
    for lease in world.leases:
        booking = BOOKING_MAINTENANCE if lease.maintenance else BOOKING_RESERVATION
        ids = {"lease_id": lease.id, "reservation_id": lease.reservation_id, "pool": POOL_RESERVABLE}
        for device, allocation in zip(lease.devices, lease.allocation_ids):
            add("maintenance" if lease.maintenance else "committed", device, lease_window(lease, world.end),
                allocation, **ids)
        for container in lease.containers:
            add("occupied", container.device, container_life(container, world.end), container.uuid,
                booking=booking, **ids)
            add("stopped", container.device, container_stops(container, world.end), container.uuid,
                booking=booking, **ids)
    frame = pl.DataFrame(rows, schema_overrides={"start": pl.Int64, "end": pl.Int64}, infer_schema_length=None) \
        if rows else pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64})
    return conform(frame.with_columns(
        pl.lit(site).alias("site"), pl.lit(SOURCE).alias("source_table"),
        pl.from_epoch("start", time_unit="s").cast(TIME), pl.from_epoch("end", time_unit="s").cast(TIME),
    ), SPAN_SCHEMA)
