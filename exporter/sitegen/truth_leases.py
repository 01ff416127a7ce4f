"""The simulated truth about bookings: each lease's creation, requested window, deletion and first
launch, and each of its allocations as booked (truth_leases.parquet, truth_bookings.parquet).

Advance bookings and leases deleted before they start are included: the booked-ahead lens counts
a lease from its creation until its deletion, whether or not it ever started. Times are naive-UTC
datetimes; ``first_launch`` is the creation of the earliest instance of the lease that launched.
"""

from __future__ import annotations

import polars as pl

from exporter.sitegen.model import World, to_dt
from exporter.sitegen.truth import whole_host


_TIME = pl.Datetime("us")
LEASE_SCHEMA = {"site": pl.String, "lease_id": pl.String, "project_id": pl.String, "maintenance": pl.Boolean,
                "created_at": _TIME, "start_date": _TIME, "end_date": _TIME, "deleted_at": _TIME,
                "first_launch": _TIME, "first_instance_uuid": pl.String}
BOOKING_SCHEMA = {"site": pl.String, "lease_id": pl.String, "allocation_id": pl.String, "maintenance": pl.Boolean,
                  "node_type": pl.String, "start": _TIME, "end": _TIME, "known_from": _TIME, "known_until": _TIME,
                  "nodes": pl.Float64, "vcpus": pl.Float64, "memory_mb": pl.Float64, "disk_gb": pl.Float64,
                  "gpus": pl.Float64}


def truth_leases(world: World, *, site: str) -> pl.DataFrame:
    """One row per lease (maintenance ones flagged), ordered by creation then id."""
    first: dict[str, tuple[int, str]] = {}
    for inst in world.instances:
        if inst.reservation_id and inst.launched is not None:
            seen = first.get(inst.reservation_id)
            if seen is None or (inst.created, inst.uuid) < seen:
                first[inst.reservation_id] = (inst.created, inst.uuid)
    rows = []
    for lease in world.leases:
        launch = first.get(lease.reservation_id)
        rows.append({"site": site, "lease_id": lease.id, "project_id": lease.project_id,
                     "maintenance": lease.maintenance, "created_at": to_dt(lease.created),
                     "start_date": to_dt(lease.start), "end_date": to_dt(lease.end),
                     "deleted_at": to_dt(lease.deleted), "first_launch": to_dt(launch[0]) if launch else None,
                     "first_instance_uuid": launch[1] if launch else None})
    return _framed(rows, LEASE_SCHEMA).sort("created_at", "lease_id")


def truth_bookings(world: World, *, site: str) -> pl.DataFrame:
    """One row per allocation: its lease's requested window and when the allocation was known
    (from the later of lease and allocation creation to the earlier of their deletions)."""
    rows = []
    for lease in world.leases:
        for alloc in lease.allocations:
            if lease.slot is None:
                resources = whole_host(alloc.host)
            else:
                vcpus, memory, disk = lease.slot
                resources = (vcpus / alloc.host.vcpus, float(vcpus), float(memory), float(disk), 0.0)
            ends = [t for t in (lease.deleted, alloc.deleted) if t is not None]
            rows.append({"site": site, "lease_id": lease.id, "allocation_id": alloc.id,
                         "maintenance": lease.maintenance, "node_type": alloc.host.node_type.name,
                         "start": to_dt(lease.start), "end": to_dt(lease.end),
                         "known_from": to_dt(max(lease.created, alloc.created)),
                         "known_until": to_dt(min(ends)) if ends else None,
                         **dict(zip(("nodes", "vcpus", "memory_mb", "disk_gb", "gpus"), resources))})
    return _framed(rows, BOOKING_SCHEMA).sort("lease_id", "allocation_id")


def _framed(rows: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
