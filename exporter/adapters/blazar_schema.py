"""Which Blazar a site runs: Chameleon's fork keeps deleted rows, upstream Blazar does not.

Upstream Blazar has no soft-delete columns (``deleted``, ``deleted_at``): it hard-deletes an
allocation when its lease ends, a deleted lease with everything under it, and a removed host
(openstack-schema.md). That is decided from the columns a table has, so ``extract`` (from what
it read) and ``reconstruct`` (from the snapshot) say it with the same one line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

SOFT_DELETE_TABLES = ("blazar.leases", "blazar.reservations", "blazar.computehost_allocations",
                      "blazar.computehosts")


def missing_soft_delete(columns: Mapping[str, Collection[str]]) -> list[str]:
    """The Blazar tables present (some columns) without ``deleted_at``, when the allocations table
    is one of them (upstream Blazar: the allocation history is what is lost); else []."""
    missing = [name for name in SOFT_DELETE_TABLES
               if columns.get(name) and "deleted_at" not in columns[name]]
    return missing if "blazar.computehost_allocations" in missing else []


def soft_delete_warning(missing: Sequence[str]) -> str:
    """The one line extract and reconstruct print for a Blazar without soft delete."""
    return (f"Blazar has no soft-delete columns (deleted, deleted_at missing in {', '.join(missing)}): "
            "it hard-deletes allocations at lease end, deleted leases and removed hosts, so committed and "
            "maintenance hours of ended leases and reservable hours of removed hosts cannot be recovered from "
            "Blazar; they are inferred from reserved instances where those survive (source inference)")
