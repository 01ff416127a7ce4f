"""The upstream-Blazar variants of a rendered site: what Blazar without Chameleon's fork keeps.

Upstream Blazar has no soft-delete columns: every delete the fork records as ``deleted_at`` is a
hard DELETE upstream (openstack-schema.md §1.3, §4.1). So the upstream rendering is the
Chameleon rendering with every soft-deleted Blazar row removed, the rows that cascade with
them removed (a lease takes its reservations, a reservation its sub-reservation and
allocations), and the fork's extra columns dropped. Nova is unchanged.

- ``upstream``: what upstream Blazar's own code leaves: allocations vanish at lease end and on
  reallocation, early-deleted leases vanish whole, retired hosts vanish; ended leases stay
  (status TERMINATED) with their reservations.
- ``upstream_purged``: as ``upstream``, and ended leases are deleted too (with their
  reservations), as operators who clean up terminated leases leave it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from exporter.sitegen.model import HOUR, World
from exporter.sitegen.render import Rendered, RenderedTable
from exporter.sitegen.schema import chameleon_only

BLAZAR_VARIANTS = ("chameleon", "upstream", "upstream_purged")
# table -> the column naming its parent, and the parent table (rows cascade with their parent)
_PARENT = {
    "blazar.reservations": ("lease_id", "blazar.leases"),
    "blazar.computehost_reservations": ("reservation_id", "blazar.reservations"),
    "blazar.instance_reservations": ("reservation_id", "blazar.reservations"),
    "blazar.computehost_allocations": ("reservation_id", "blazar.reservations"),
}


def as_upstream(rendered: Rendered, *, variant: str, snapshot: int) -> Rendered:
    """``rendered`` as upstream Blazar stores it (``variant`` not ``chameleon``)."""
    out = dict(rendered)
    survivors: dict[str, set] = {}
    for name in ("blazar.leases", "blazar.reservations"):  # parents first: children need their ids
        table = rendered[name]
        rows = [row for row in _surviving(table, name, survivors, variant=variant, snapshot=snapshot)]
        survivors[name] = {row[table.columns.index("id")] for row in rows}
        out[name] = _stripped(name, RenderedTable(table.columns, rows))
    for name, table in rendered.items():
        if name.startswith("blazar.") and name not in survivors:
            out[name] = _stripped(name, RenderedTable(
                table.columns, _surviving(table, name, survivors, variant=variant, snapshot=snapshot)))
    return out


def _surviving(table: RenderedTable, name: str, survivors: dict[str, set], *, variant: str,
               snapshot: int) -> Iterator[tuple]:
    """Rows not deleted, whose parent row survives (and, purged: leases not ended)."""
    columns = table.columns
    deleted_at = columns.index("deleted_at")
    parent_column, parent_table = _PARENT.get(name, (None, None))
    parent_at = columns.index(parent_column) if parent_column else None
    ended_at = columns.index("end_date") if name == "blazar.leases" and variant == "upstream_purged" else None
    for row in table.rows:
        if row[deleted_at] is not None:
            continue
        if parent_at is not None and parent_table in survivors and row[parent_at] not in survivors[parent_table]:
            continue
        if ended_at is not None and row[ended_at] <= snapshot:
            continue
        yield row


def _stripped(name: str, table: RenderedTable) -> RenderedTable:
    """``table`` without the columns only the Chameleon fork has."""
    dropped = set(chameleon_only(name.split(".", 1)[1]))
    keep = [i for i, column in enumerate(table.columns) if column not in dropped]
    columns = tuple(table.columns[i] for i in keep)
    return RenderedTable(columns, (tuple(row[i] for i in keep) for row in table.rows))


def upstream_losses(world: World, *, variant: str) -> dict[str, float]:
    """Truth the upstream variant cannot show directly, in node-hours (truth.json ``blazar``).

    ``gone_committed``/``gone_maintenance``: allocation hours whose row upstream deletes (every
    ended or replaced allocation, and all of an early-deleted lease's). ``provable_committed``/
    ``provable_maintenance``: the part of those hours during which a launched reserved instance
    of the same reservation ran on the host (what the instances alone prove). ``orphaned_occupied``: hours of launched
    reserved instances whose allocation row is gone.
    """
    out = {"gone_committed_node_hours": 0.0, "gone_maintenance_node_hours": 0.0,
           "provable_committed_node_hours": 0.0, "provable_maintenance_node_hours": 0.0,
           "orphaned_occupied_node_hours": 0.0}
    if variant == "chameleon":
        return out
    runs = _reserved_runs(world)
    orphaned: set[tuple[str, str]] = set()
    for lease in world.leases:
        for alloc in lease.allocations:
            window = alloc.window()
            if window is None or not _allocation_gone(alloc, world.end, variant=variant):
                continue
            start, end = window[0], min(window[1], world.end)
            share = 1.0 if lease.slot is None else lease.slot[0] / alloc.host.vcpus
            kind = "gone_maintenance_node_hours" if lease.maintenance else "gone_committed_node_hours"
            out[kind] += max(0, end - start) / HOUR * share
            key = (lease.reservation_id, alloc.host.hostname)
            provable = "provable_maintenance_node_hours" if lease.maintenance else "provable_committed_node_hours"
            out[provable] += _covered(runs.get(key, []), start, end) / HOUR * share
            orphaned.add(key)
    for inst in world.instances:
        if inst.launched is not None and inst.host is not None and (
                inst.reservation_id, inst.host.hostname) in orphaned:
            nodes = 1.0 if world.kind == "baremetal" else inst.vcpus / inst.host.vcpus
            end = world.end if inst.end is None else min(inst.end, world.end)
            out["orphaned_occupied_node_hours"] += max(0, end - inst.created) / HOUR * nodes
    return {key: round(value, 3) for key, value in out.items()}


def _allocation_gone(alloc, snapshot: int, *, variant: str) -> bool:
    """Whether ``as_upstream`` removes the allocation's row (mirrors its rules)."""
    lease = alloc.lease
    purged = variant == "upstream_purged" and lease.end <= snapshot
    return alloc.deleted is not None or lease.deleted is not None or purged


def _reserved_runs(world: World) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(reservation id, hostname) -> [created, end) of its launched instances on that host."""
    runs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for inst in world.instances:
        if inst.reservation_id and inst.launched is not None and inst.host is not None:
            end = world.end if inst.end is None else inst.end
            runs.setdefault((inst.reservation_id, inst.host.hostname), []).append((inst.created, end))
    return runs


def _covered(runs: Iterable[tuple[int, int]], start: int, end: int) -> int:
    """Seconds of [start, end) covered by the union of ``runs``."""
    total, reach = 0, start
    for run_start, run_end in sorted(runs):
        lo, hi = max(run_start, reach), min(run_end, end)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total
