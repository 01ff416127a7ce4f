"""Per-quirk counts and their known effect on reconstructable hours, for truth.json.

Hours are node-hours unless the key says otherwise; all clipped to the snapshot.
``lost_*`` hours are in the truth but cannot be recovered from the rendered tables;
``naive_extra_*`` hours would be added by a reconstructor that ignores the quirk's rule.
"""

from __future__ import annotations

import polars as pl

from exporter.sitegen.model import HOUR, Host, World
from exporter.sitegen.quirks import QUIRKS
from exporter.sitegen.render import blazar_row_purged, nova_row_purged
from exporter.sitegen.truth_pools import flag_down_effects


def _hours(start: int, end: int | None, snapshot: int) -> float:
    stop = snapshot if end is None else min(end, snapshot)
    return max(0, stop - min(start, snapshot)) / HOUR


def quirk_effects(world: World, quirks: frozenset[str], counts: dict[str, int], spans: pl.DataFrame,
                  keeps_deleted: bool = True) -> dict:
    hours: dict[str, dict[str, float]] = {
        "nova_hard_deleted": _nova_purge_hours(world, quirks),
        "blazar_hard_deleted": _blazar_purge_hours(world, quirks),
        "ironic_zero_inventory": _zero_inventory_hours(world, quirks),
        "maintenance_flag": flag_down_effects(world, quirks, keeps_deleted),
        "killed_by_blazar": {"lost_occupied_node_hours": sum(
            i.overrun * _nodes(world, i.host, i.vcpus) for i in world.instances) / HOUR},
        "late_deleted_at": {"naive_extra_occupied_node_hours": sum(
            i.late_delete_days * 24 * _nodes(world, i.host, i.vcpus) for i in world.instances)},
        "shelve_offload": {"lost_occupied_node_hours": sum(
            _hours(p.start, p.end, world.end) * _nodes(world, p.host, p.vcpus)
            for i in world.instances for p in i.placements if not p.host_evidenced)},
        "never_launched": {"naive_extra_occupied_node_hours": sum(
            _hours(i.created, i.end, world.end) * _nodes(world, i.host, i.vcpus)
            for i in world.instances if i.failed_build and i.node_recorded)},
    }
    counts = {**counts, **render_counts(world, quirks)}
    out = {}
    for name, (stage, what, effect) in QUIRKS.items():
        out[name] = {"enabled": name in quirks, "stage": stage, "description": what, "effect": effect,
                     "count": counts.get(name, 0), "hours": {k: round(v, 3) for k, v in hours.get(name, {}).items()}}
    return out


def render_counts(world: World, quirks: frozenset[str]) -> dict[str, int]:
    """Rows each render quirk changed or removed."""
    from exporter.sitegen.render import blazar_inventory, nova_inventory

    incs = [(host, inc) for host in world.hosts for inc in host.incarnations]
    rows = [(host, row) for host, inc in incs for row in inc.blazar]
    return {
        "orphan_services": int("orphan_services" in quirks),
        "nova_hard_deleted": sum(nova_row_purged(inc, quirks) for _, inc in incs),
        "blazar_hard_deleted": sum(blazar_row_purged(row, quirks) for _, row in rows),
        "ironic_zero_inventory": sum(
            not nova_row_purged(inc, quirks) and nova_inventory(world, host, inc, quirks)[0] == 0
            for host, inc in incs) + sum(
            not blazar_row_purged(row, quirks) and blazar_inventory(world, host, row, quirks)[0] == 0
            for host, row in rows),
    }


def _nodes(world: World, host: Host | None, vcpus: int) -> float:
    if host is None:
        return 0.0
    return 1.0 if world.kind == "baremetal" else vcpus / host.vcpus


def _nova_purge_hours(world: World, quirks: frozenset[str]) -> dict[str, float]:
    """Total hours of purged compute_nodes rows that no surviving Blazar row still covers (and,
    on KVM, no service row joined through a surviving compute node of the same host)."""
    lost = 0.0
    for host in world.hosts:
        joined = world.kind == "kvm" and any(not nova_row_purged(inc, quirks) for inc in host.incarnations)
        for inc in host.incarnations:
            if not nova_row_purged(inc, quirks) or joined:
                continue
            covered = sum(_hours(r.start, r.end, world.end) for r in inc.blazar
                          if not r.duplicate and not blazar_row_purged(r, quirks))
            lost += _hours(inc.start, inc.end, world.end) - covered
    return {"lost_total_node_hours": lost}


def _blazar_purge_hours(world: World, quirks: frozenset[str]) -> dict[str, float]:
    """Reservable hours of purged host rows, and lease/instance hours that pointed at them."""
    out = {"lost_reservable_node_hours": 0.0, "lost_committed_node_hours": 0.0,
           "lost_maintenance_node_hours": 0.0, "orphaned_occupied_node_hours": 0.0}
    for host in world.hosts:
        for inc in host.incarnations:
            row = inc.primary
            if row is not None and blazar_row_purged(row, quirks):
                out["lost_reservable_node_hours"] += _hours(row.start, row.end, world.end)
    purged_allocs = {}
    for lease in world.leases:
        for alloc in lease.allocations:
            window = alloc.window()
            if window is None or not blazar_row_purged(alloc.row, quirks):
                continue
            key = "lost_maintenance_node_hours" if lease.maintenance else "lost_committed_node_hours"
            share = 1.0 if lease.slot is None else lease.slot[0] / alloc.host.vcpus
            out[key] += _hours(*window, world.end) * share
            purged_allocs.setdefault((lease.reservation_id, alloc.host.hostname), []).append(window)
    for inst in world.instances:
        windows = purged_allocs.get((inst.reservation_id, inst.host.hostname if inst.host else None))
        if inst.launched is not None and windows:
            out["orphaned_occupied_node_hours"] += _hours(inst.created, inst.end, world.end) * _nodes(
                world, inst.host, inst.vcpus)
    return out


def _zero_inventory_hours(world: World, quirks: frozenset[str]) -> dict[str, float]:
    """Host-hours whose vcpus/memory/disk no surviving row reports (all rows show 0)."""
    from exporter.sitegen.render import blazar_inventory, nova_inventory

    node_hours = vcpu_hours = 0.0
    for host in world.hosts:
        for inc in host.incarnations:
            nova_known = not nova_row_purged(inc, quirks) and nova_inventory(world, host, inc, quirks)[0] > 0
            blazar_known = any(blazar_inventory(world, host, r, quirks)[0] > 0 for r in inc.blazar
                               if not blazar_row_purged(r, quirks))
            if not (nova_known or blazar_known):
                h = _hours(inc.start, inc.end, world.end)
                node_hours += h
                vcpu_hours += h * host.vcpus
    return {"unknown_inventory_node_hours": node_hours, "unknown_vcpu_hours": vcpu_hours}
