"""How Nova and the Chameleon Blazar fork store the simulated hosts and leases, quirks included.

Output: ``{"schema.table": RenderedTable}`` with column names and row tuples in id order;
datetime columns hold epoch seconds (the writer formats them for the backend).
Render quirks (ironic zero inventory, hard deletion, duplicate host rows) are applied here; the
records in the World are never modified.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.sitegen.model import (
    BLAZAR_SOFT_DELETE_SINCE,
    NOVA_PURGE_BEFORE,
    STEIN,
    BlazarHostRow,
    Host,
    Incarnation,
    Rng,
    World,
)


@dataclass
class RenderedTable:
    """Column names and rows (a list or a one-shot iterator). Datetimes are epoch seconds."""

    columns: tuple[str, ...]
    rows: Iterable[tuple] = field(default_factory=list)


Rendered = dict[str, RenderedTable]


def nova_deleted(row_id: int, deleted_at: int | None) -> int:
    return row_id if deleted_at is not None else 0


def blazar_deleted(row_id: str, deleted_at: int | None) -> str | None:
    return row_id if deleted_at is not None else None


def last_update(start: int, end: int | None, snapshot: int, lag: int = 30) -> int:
    """``updated_at`` of a heartbeating row: shortly before its end or the snapshot."""
    return max(start, (end if end is not None else snapshot) - lag)


def nova_row_purged(inc: Incarnation, quirks: frozenset[str]) -> bool:
    return "nova_hard_deleted" in quirks and inc.end is not None and inc.end < NOVA_PURGE_BEFORE


def blazar_row_purged(row: BlazarHostRow, quirks: frozenset[str]) -> bool:
    return "blazar_hard_deleted" in quirks and row.end is not None and row.end < BLAZAR_SOFT_DELETE_SINCE


def nova_inventory(world: World, host: Host, inc: Incarnation, quirks: frozenset[str]) -> tuple[int, int, int]:
    """vcpus, memory_mb, local_gb as the compute_nodes row shows them at the snapshot."""
    if (world.kind == "baremetal" and "ironic_zero_inventory" in quirks
            and (inc.end is None or inc.end >= STEIN)):
        return 0, 0, 0
    return host.vcpus, host.memory_mb, host.disk_gb


def blazar_inventory(world: World, host: Host, row: BlazarHostRow, quirks: frozenset[str]) -> tuple[int, int, int]:
    """Blazar snapshots Nova's numbers at enrolment: 0 for ironic hosts enrolled after Stein."""
    if world.kind == "baremetal" and "ironic_zero_inventory" in quirks and row.start >= STEIN:
        return 0, 0, 0
    return host.vcpus, host.memory_mb, host.disk_gb


def render_compute_nodes(world: World, quirks: frozenset[str]) -> Rendered:
    cols = ("id", "service_id", "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
            "local_gb_used", "hypervisor_type", "hypervisor_version", "cpu_info", "disk_available_least",
            "free_ram_mb", "free_disk_gb", "current_workload", "running_vms", "hypervisor_hostname",
            "host_ip", "stats", "host", "ram_allocation_ratio", "cpu_allocation_ratio", "uuid",
            "disk_allocation_ratio", "mapped", "created_at", "updated_at", "deleted_at", "deleted")
    from exporter.sitegen.render_control import compute_services

    services = compute_services(world, quirks)
    by_start = {(name, start): service_id for service_id, name, start, _, _ in services}
    by_name = {name: service_id for service_id, name, _, _, _ in services}
    kvm = world.kind == "kvm"
    rows = []
    for host in world.hosts:
        for inc in host.incarnations:
            if nova_row_purged(inc, quirks):
                continue
            vcpus, memory, disk = nova_inventory(world, host, inc, quirks)
            old = inc.start < STEIN
            ratios = (0.0, 0.0, 0.0) if kvm and old else (1.5, 16.0, 1.0) if kvm else (1.0, 1.0, 1.0)
            cpu_info = json.dumps({"arch": "x86_64", "model": "Skylake-Server", "vendor": "Intel",
                                   "topology": {"cells": 2, "cores": vcpus // 4, "threads": 2}}) if kvm else ""
            rows.append((
                inc.nova_id, by_start.get((host.service_host, inc.start), by_name.get(host.service_host)), vcpus, memory, disk, 0, 0, 0,
                "QEMU" if kvm else "ironic", 4002000 if kvm else 1, cpu_info, disk, memory, disk, 0, 0,
                host.hostname, None, json.dumps({"cpu_arch": "x86_64"}), host.service_host,
                ratios[0], ratios[1], inc.nova_uuid, ratios[2], 1,
                inc.start, last_update(inc.start, inc.end, world.end), inc.end,
                nova_deleted(inc.nova_id, inc.end),
            ))
    rows.sort(key=lambda row: row[0])
    return {"nova.compute_nodes": RenderedTable(cols, rows)}


def render_blazar_hosts(world: World, quirks: frozenset[str], capability_schema: str) -> Rendered:
    cols = ("id", "vcpus", "cpu_info", "hypervisor_type", "hypervisor_version", "hypervisor_hostname",
            "service_name", "memory_mb", "local_gb", "status", "availability_zone", "trust_id",
            "reservable", "disabled", "created_at", "updated_at", "deleted", "deleted_at")
    from exporter.sitegen.render_control import flag_at

    rng = Rng(world.start + 1)
    hosts, capabilities = [], []
    for host in world.hosts:
        for inc in host.incarnations:
            for row in inc.blazar:
                if blazar_row_purged(row, quirks):
                    continue
                vcpus, memory, disk = blazar_inventory(world, host, row, quirks)
                reservable, changed = flag_at(host, row, row.end if row.end is not None else world.end)
                updated = changed if changed is not None else (
                    row.end if row.end is not None else min(row.start + 60, world.end))
                hosts.append((
                    row.id, vcpus, "", "QEMU" if world.kind == "kvm" else "ironic", 1, host.hostname,
                    host.service_host, memory, disk, None, "", rng.uuid(), reservable, 0,
                    row.start, updated, blazar_deleted(row.id, row.end), row.end,
                ))
                capabilities.extend((row, name, value) for name, value in host_capabilities(host))
    hosts.sort(key=lambda r: r[14])
    out = {"blazar.computehosts": RenderedTable(cols, hosts)}
    out.update(render_capabilities(rng, capabilities, capability_schema))
    return out


def host_capabilities(host: Host) -> list[tuple[str, str]]:
    """Flattened reference-API capabilities: ``node_type`` and ``gpu.gpu_count`` carry meaning."""
    nt = host.node_type
    caps = [
        ("node_type", nt.name), ("uid", host.uid), ("su_factor", "2.0" if nt.gpus else "1.0"),
        ("architecture.smt_size", str(host.vcpus)), ("main_memory.ram_size", str(host.memory_mb << 20)),
        ("placement.rack", f"{int(host.uid[3:]) // 40 + 1}"), ("placement.node", host.uid[3:]),
        ("gpu.gpu", "True" if nt.gpus else "False"), ("storage_devices.0.size", str(host.disk_gb << 30)),
    ]
    if nt.gpus:
        caps += [("gpu.gpu_count", str(nt.gpus)), ("gpu.gpu_model", nt.gpu_model)]
    if host.uid.endswith("7"):
        caps.append(("network_adapters.1.model", ""))  # hammers "soft removed" a key
    return caps


def render_capabilities(rng: Rng, capabilities: list[tuple[BlazarHostRow, str, str]], schema: str) -> Rendered:
    names: dict[str, tuple[str, int]] = {}
    for row, name, _ in capabilities:
        if name not in names or row.start < names[name][1]:
            names[name] = (names.get(name, ("", 0))[0], row.start)
    name_ids = {name: rng.uuid() for name in sorted(names)}
    key = {"property_id": "property_id", "capability_id": "capability_id"}.get(schema, "capability_name")
    cols = ("id", "computehost_id", key, "capability_value", "created_at", "updated_at", "deleted", "deleted_at")
    rows = []
    for row, name, value in capabilities:
        cap_id = rng.uuid()
        deleted_at = row.end  # soft-deleted with the host (purged ones were never rendered)
        rows.append((cap_id, row.id, name if key == "capability_name" else name_ids[name], value,
                     row.start, row.start, blazar_deleted(cap_id, deleted_at), deleted_at))
    rows.sort(key=lambda r: (r[4], r[0]))
    out = {"blazar.computehost_extra_capabilities": RenderedTable(cols, rows)}
    if key != "capability_name":
        table = "resource_properties" if key == "property_id" else "extra_capabilities"
        name_col = "property_name" if key == "property_id" else "capability_name"
        name_rows = [(name_ids[name], "physical:host", name, 0, 0, first, first, None, None)
                     for name, (_, first) in sorted(names.items())]
        out[f"blazar.{table}"] = RenderedTable(
            ("id", "resource_type", name_col, "private", "is_unique", "created_at", "updated_at",
             "deleted", "deleted_at"), name_rows)
    return out
