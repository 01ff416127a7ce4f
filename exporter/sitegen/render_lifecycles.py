"""How Nova stores sizes and moves: ``nova_api.flavors``, ``nova.instance_extra`` (flavor JSON
only matters here) and ``nova.migrations``.

Facts from Nova's source: flavors are hard-deleted in the API database; ``instance_extra.flavor``
is ``{"cur": <Flavor primitive>, "old": ..., "new": ...}`` with old/new set from a resize until it
is confirmed or reverted; deleting an instance soft-deletes its instance_extra and migrations rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from exporter.sitegen.kvm_lifecycles import RETIRED_FLAVOR
from exporter.sitegen.model import Instance, Rng, World
from exporter.sitegen.render import Rendered, RenderedTable, nova_deleted
from exporter.sitegen.render_activity import flavor_json

FLAVOR_COLS = ("created_at", "updated_at", "name", "id", "memory_mb", "vcpus", "swap", "vcpu_weight", "flavorid",
               "rxtx_factor", "root_gb", "ephemeral_gb", "disabled", "is_public", "description")
EXTRA_COLS = ("id", "instance_uuid", "flavor", "created_at", "updated_at", "deleted_at", "deleted")
MIGRATION_COLS = ("id", "source_compute", "dest_compute", "source_node", "dest_node", "dest_host",
                  "old_instance_type_id", "new_instance_type_id", "instance_uuid", "uuid", "status", "migration_type",
                  "hidden", "cross_cell_move", "user_id", "project_id", "created_at", "updated_at", "deleted_at",
                  "deleted")
Sizes = dict[str, tuple[int, int, int]]


def flavor_sizes(world: World) -> Sizes:
    """vcpus, memory_mb, disk_gb of every flavor any instance had, by name."""
    sizes: Sizes = {}
    for inst in world.instances:
        sizes.setdefault(inst.flavor_name, (inst.vcpus, inst.memory_mb, inst.disk_gb))
        for place in inst.placements:
            sizes.setdefault(place.flavor_name, (place.vcpus, place.memory_mb, place.disk_gb))
    return sizes


def render_sizes_and_moves(world: World, flavor_ids: dict[str, int]) -> Rendered:
    """flavors (public ones still defined), instance_extra and migrations, in creation order."""
    sizes = flavor_sizes(world)
    ordered = sorted(world.instances, key=lambda i: (i.created, i.uuid))
    kept = sorted((flavor_ids[name], name) for name in sizes if name in flavor_ids and name != RETIRED_FLAVOR.name)
    flavors = [(world.start, None, name, flavor_id, sizes[name][1], sizes[name][0], 0, 0, name, 1.0, sizes[name][2], 0,
                0, 1, None) for flavor_id, name in kept]
    return {
        "nova_api.flavors": RenderedTable(FLAVOR_COLS, flavors),
        "nova.instance_extra": RenderedTable(EXTRA_COLS, _extra_rows(ordered, sizes, flavor_ids)),
        "nova.migrations": RenderedTable(MIGRATION_COLS, _migration_rows(ordered, flavor_ids, Rng(world.start + 5))),
    }


def _deleted_at(inst: Instance) -> int | None:
    if inst.end is None:
        return None
    return inst.end + inst.late_delete_days * 86400


def _extra_rows(ordered: list[Instance], sizes: Sizes, flavor_ids: dict[str, int]) -> Iterator[tuple]:
    for row_id, inst in enumerate(ordered, start=1):
        pending = next((m for m in inst.migrations if m.status == "finished"), None)

        def primitive(name: str) -> dict:
            return json.loads(flavor_json(name, flavor_ids.get(name, 1), *sizes[name]))

        flavor = {"cur": primitive(inst.flavor_name),
                  "old": primitive(pending.old_flavor) if pending else None,
                  "new": primitive(pending.new_flavor) if pending else None}
        deleted_at = _deleted_at(inst)
        yield (row_id, inst.uuid, json.dumps(flavor, sort_keys=True), inst.created, inst.relaunched or inst.launched,
               deleted_at, nova_deleted(row_id, deleted_at))


def _migration_rows(ordered: list[Instance], flavor_ids: dict[str, int], rng: Rng) -> Iterator[tuple]:
    moves = sorted(((m.created, inst.uuid, index, inst, m) for inst in ordered
                    for index, m in enumerate(inst.migrations)), key=lambda row: row[:3])
    for row_id, (_, _, _, inst, m) in enumerate(moves, start=1):
        deleted_at = _deleted_at(inst)
        yield (row_id, m.source.service_host, m.dest.service_host, m.source.hostname, m.dest.hostname,
               f"10.0.{row_id % 250}.{row_id % 200 + 1}", flavor_ids.get(m.old_flavor), flavor_ids.get(m.new_flavor),
               inst.uuid, rng.uuid(), m.status, m.kind, 0, 0, inst.user_id, inst.project_id, m.created, m.updated,
               deleted_at, nova_deleted(row_id, deleted_at))
