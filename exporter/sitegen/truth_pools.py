"""Which pool every host-hour was really in, what the rendered data can tell about it, and the
true maintenance-flag time — computed from the simulated records, independently of the
reconstruction (docs/synthetic-site.md).

Pools: a host-hour is truly ``reservable`` while the host's primary Blazar row covers it, else
``ondemand``. The data's ``evidence`` for that hour follows the rules of docs/semantics.md:
``reservable`` where a surviving Blazar row of the host or a reserved instance on it covers
the hour; else ``ondemand`` where an on-demand instance ran on it, or where Blazar's history is
evidently complete (from the earliest soft-deleted row the data keeps) and holds no row of the
host; else ``unknown``; ``absent`` where no surviving row even shows the host existed.
"""

from __future__ import annotations

import polars as pl

from exporter.sitegen import timesets
from exporter.sitegen.model import AUDIT_SINCE, HOUR, BlazarHostRow, Host, World
from exporter.sitegen.render import blazar_row_purged, nova_row_purged
from exporter.sitegen.timesets import Pairs

POOL_EVIDENCE = ("reservable", "ondemand", "unknown", "absent")
TRUTH_POOL_SCHEMA = {"site": pl.String(), "hypervisor_hostname": pl.String(), "node_type": pl.String(),
                     "pool": pl.String(), "evidence": pl.String(), "start": pl.Int64(), "end": pl.Int64()}


def kept(row: BlazarHostRow, quirks: frozenset[str], keeps_deleted: bool) -> bool:
    """Whether the written tables hold ``row`` (upstream Blazar keeps no deleted row at all)."""
    return not blazar_row_purged(row, quirks) and (keeps_deleted or row.end is None)


def blazar_evident_since(world: World, quirks: frozenset[str], keeps_deleted: bool = True) -> int | None:
    """The earliest ``deleted_at`` among the Blazar host rows the data keeps (None: no such row)."""
    ends = [row.end for host in world.hosts for inc in host.incarnations for row in inc.blazar
            if row.end is not None and kept(row, quirks, keeps_deleted)]
    return min(ends) if ends else None


def _closed(start: int, end: int | None, snapshot: int) -> tuple[int, int]:
    return min(start, snapshot), snapshot if end is None else min(end, snapshot)


def _instances_by_host(world: World) -> dict[str, tuple[list, list]]:
    """hostname -> (reserved instance windows, on-demand instance windows), launched ones only,
    per placement (a migrated instance evidences each host it ran on, where a row names it)."""
    out: dict[str, tuple[list, list]] = {}
    for inst in world.instances:
        if inst.launched is None or inst.host is None:
            continue
        for place in inst.occupancy():
            if place.host is None or not place.host_evidenced:
                continue
            reserved, ondemand = out.setdefault(place.host.hostname, ([], []))
            (reserved if inst.reservation_id else ondemand).append(_closed(place.start, place.end, world.end))
    return out


def host_pool_sets(world: World, host: Host, quirks: frozenset[str], evident_since: int | None,
                   instances: tuple[list, list],
                   keeps_deleted: bool = True) -> tuple[dict[str, Pairs], dict[str, Pairs]]:
    """({true pool: instants}, {evidence: instants}) of one host, over its true existence."""
    snap = world.end
    total = timesets.union(_closed(inc.start, inc.end, snap) for inc in host.incarnations)
    primary = timesets.union(_closed(inc.primary.start, inc.primary.end, snap) for inc in host.incarnations
                             if inc.primary is not None)
    kept_blazar = timesets.union(_closed(r.start, r.end, snap) for inc in host.incarnations for r in inc.blazar
                                 if kept(r, quirks, keeps_deleted))
    nova = [_closed(inc.start, inc.end, snap) for inc in host.incarnations if not nova_row_purged(inc, quirks)]
    # a KVM service row (never purged here) joins its hypervisor through any surviving compute node
    services = [_closed(inc.start, inc.end, snap) for inc in host.incarnations] if world.kind == "kvm" and nova else []
    exists = timesets.union([*nova, *services, *kept_blazar])
    reserved_ev = timesets.union([*kept_blazar, *instances[0]])
    complete = [] if evident_since is None else timesets.subtract([(evident_since, snap)], kept_blazar)
    ondemand_ev = timesets.subtract(timesets.union([*instances[1], *complete]), reserved_ev)
    evidence = {
        "reservable": timesets.intersect(exists, reserved_ev),
        "ondemand": timesets.intersect(exists, ondemand_ev),
        "unknown": timesets.subtract(exists, timesets.union([*reserved_ev, *ondemand_ev])),
        "absent": timesets.subtract(total, exists),
    }
    return {"reservable": primary, "ondemand": timesets.subtract(total, primary)}, evidence


def truth_pools(world: World, quirks: frozenset[str], *, site: str, keeps_deleted: bool = True) -> pl.DataFrame:
    """One row per (host, true pool, evidence) piece: TRUTH_POOL_SCHEMA, epoch seconds.

    ``keeps_deleted``: False for upstream Blazar, which hard-deletes every deleted row."""
    evident_since = blazar_evident_since(world, quirks, keeps_deleted)
    by_host = _instances_by_host(world)
    rows = []
    for host in world.hosts:
        pools, evidence = host_pool_sets(world, host, quirks, evident_since, by_host.get(host.hostname, ([], [])),
                                         keeps_deleted)
        for pool, instants in pools.items():
            for kind in POOL_EVIDENCE:
                for start, end in timesets.intersect(instants, evidence[kind]):
                    rows.append((site, host.hostname, host.node_type.name, pool, kind, start, end))
    frame = pl.DataFrame(rows, schema=TRUTH_POOL_SCHEMA, orient="row")
    return frame.sort("hypervisor_hostname", "start")


def pool_hours(pools: pl.DataFrame) -> dict[str, dict[str, float]]:
    """{true pool: {evidence: node-hours}} (every host is one node)."""
    hours = pools.group_by("pool", "evidence").agg(((pl.col("end") - pl.col("start")).sum() / HOUR).alias("h"))
    out: dict[str, dict[str, float]] = {}
    for pool, kind, value in hours.sort("pool", "evidence").iter_rows():
        out.setdefault(pool, {})[kind] = round(value, 3)
    return out


def flag_down_truth(world: World) -> dict[str, Pairs]:
    """hostname -> the true maintenance-mask time: flag down, outside every allocation window."""
    windows: dict[str, list] = {}
    for lease in world.leases:
        for alloc in lease.allocations:
            window = alloc.window()
            if window is not None:
                windows.setdefault(alloc.host.hostname, []).append(_closed(*window, world.end))
    out = {}
    for host in world.hosts:
        if host.flag_down:
            down = timesets.union(_closed(d, u, world.end) for d, u in host.flag_down)
            out[host.hostname] = timesets.subtract(down, timesets.union(windows.get(host.hostname, [])))
    return out


def recoverable_flag_down(world: World, host: Host, quirks: frozenset[str], keeps_deleted: bool = True) -> Pairs:
    """The flag-down time the data keeps: a flag still down when its row ends (or at the
    snapshot) from the row's ``updated_at``; the rest only after the audit triggers exist
    (Chameleon's, so not on upstream Blazar)."""
    found = []
    for inc in host.incarnations:
        row = inc.primary
        if row is None or not kept(row, quirks, keeps_deleted):
            continue
        stop = row.end if row.end is not None else world.end
        for down, up in host.flag_down:
            if not row.start <= down < stop:
                continue
            if up is None or up == row.end:
                found.append(_closed(down, up, world.end))
            elif world.end > AUDIT_SINCE and keeps_deleted:
                found.append(_closed(max(down, AUDIT_SINCE), up, world.end))
    return timesets.union(found)


def flag_down_effects(world: World, quirks: frozenset[str], keeps_deleted: bool = True) -> dict[str, float]:
    """Mask node-hours, the part under commitments (stays committed), and the part lost."""
    truth = flag_down_truth(world)
    hosts = {host.hostname: host for host in world.hosts}
    raw = sum(timesets.seconds(timesets.union(_closed(d, u, world.end) for d, u in h.flag_down)) for h in world.hosts)
    masked = sum(timesets.seconds(pairs) for pairs in truth.values())
    lost = sum(timesets.seconds(timesets.subtract(pairs, recoverable_flag_down(world, hosts[name], quirks, keeps_deleted)))
               for name, pairs in truth.items())
    return {"flag_down_node_hours": raw / HOUR, "under_commitment_node_hours": (raw - masked) / HOUR,
            "lost_mask_node_hours": lost / HOUR}
