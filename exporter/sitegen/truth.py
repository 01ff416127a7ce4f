"""The simulated truth: what really happened, as canonical spans (SPAN_SCHEMA, source 'truth').

Levels: total (host existed), reservable (enrolled in Blazar), committed / maintenance
(allocation effective window), occupied (instance held the host: created -> true end, one span
per placement when a KVM lifecycle moved, resized or offloaded it), stopped (sub-spans of
occupied, split by placement). Spans are cut at the snapshot: a span still open then has
``end = null``; nothing that starts after the snapshot is included.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.columns import (
    BOOKING_ONDEMAND,
    BOOKING_RESERVATION,
    POOL_ONDEMAND,
    POOL_RESERVABLE,
    SPAN_SCHEMA,
    TIME,
    conform,
)
from exporter.sitegen.model import Host, Placement, World

SOURCE = "truth"


class _Spans:
    """Column lists being filled; one ``add`` per span."""

    def __init__(self, site: str, snapshot: int) -> None:
        self.site, self.snapshot = site, snapshot
        self.cols: dict[str, list] = {name: [] for name in (
            "level", "source_id", "entity_id", "hypervisor_hostname", "node_type", "pool", "booking",
            "project_id", "lease_id", "reservation_id", "start", "end", "nodes", "vcpus", "memory_mb",
            "disk_gb", "gpus")}

    def add(self, level: str, host: Host, start: int, end: int | None, *, source_id: str, entity_id: str,
            resources: tuple[float, float, float, float, float], pool: str | None = None,
            booking: str | None = None, project_id: str | None = None, lease_id: str | None = None,
            reservation_id: str | None = None) -> None:
        if start >= self.snapshot or (end is not None and end <= start):
            return
        if end is not None and end >= self.snapshot:
            end = None
        values = (level, source_id, entity_id, host.hostname, host.node_type.name, pool, booking, project_id,
                  lease_id, reservation_id, start, end, *resources)
        for name, value in zip(self.cols, values):
            self.cols[name].append(value)

    def frame(self) -> pl.DataFrame:
        frame = pl.DataFrame(self.cols, schema_overrides={"start": pl.Int64, "end": pl.Int64})
        return conform(frame.with_columns(
            pl.lit(self.site).alias("site"), pl.lit(SOURCE).alias("source_table"),
            pl.from_epoch("start", time_unit="s").cast(TIME), pl.from_epoch("end", time_unit="s").cast(TIME),
        ), SPAN_SCHEMA)


def whole_host(host: Host) -> tuple[float, float, float, float, float]:
    return 1.0, float(host.vcpus), float(host.memory_mb), float(host.disk_gb), float(host.node_type.gpus)


def placement_share(world: World, place: Placement) -> tuple[float, float, float, float, float]:
    """Bare metal: the whole host; KVM: the placement's flavor, nodes = vcpus / host vcpus."""
    if world.kind == "baremetal":
        return whole_host(place.host)
    return place.vcpus / place.host.vcpus, float(place.vcpus), float(place.memory_mb), float(place.disk_gb), 0.0


def _overlap(a: tuple[int, int | None], b: tuple[int, int | None]) -> tuple[int, int | None] | None:
    """The intersection of two [start, end) windows (None end = open), or None when empty."""
    start = max(a[0], b[0])
    ends = [end for end in (a[1], b[1]) if end is not None]
    end = min(ends) if ends else None
    return None if end is not None and end <= start else (start, end)


def truth_spans(world: World, *, site: str) -> pl.DataFrame:
    """Every true span of ``world`` in SPAN_SCHEMA, ordered by level then start."""
    spans = _Spans(site, world.end)
    for host in world.hosts:
        for inc in host.incarnations:
            spans.add("total", host, inc.start, inc.end, source_id=str(inc.nova_id), entity_id=host.hostname,
                      resources=whole_host(host))
            row = inc.primary
            if row is not None:
                spans.add("reservable", host, row.start, row.end, source_id=row.id, entity_id=host.hostname,
                          resources=whole_host(host), pool=POOL_RESERVABLE)
    for lease in world.leases:
        level = "maintenance" if lease.maintenance else "committed"
        for alloc in lease.allocations:
            window = alloc.window()
            if window is None:
                continue
            if lease.slot is None:
                resources = whole_host(alloc.host)
            else:
                vcpus, memory, disk = lease.slot
                resources = (vcpus / alloc.host.vcpus, float(vcpus), float(memory), float(disk), 0.0)
            spans.add(level, alloc.host, window[0], window[1], source_id=alloc.id, entity_id=alloc.id,
                      resources=resources, pool=POOL_RESERVABLE, project_id=lease.project_id,
                      lease_id=lease.id, reservation_id=lease.reservation_id)
    for inst in world.instances:
        if inst.launched is None:
            continue
        booking = BOOKING_RESERVATION if inst.reservation_id else BOOKING_ONDEMAND
        pool = POOL_RESERVABLE if inst.reservation_id else POOL_ONDEMAND
        common = dict(source_id=inst.uuid, entity_id=inst.uuid, pool=pool, booking=booking,
                      project_id=inst.project_id, reservation_id=inst.reservation_id)
        for place in inst.occupancy():  # one span per (host, size) stretch; stopped split likewise
            share = placement_share(world, place)
            spans.add("occupied", place.host, place.start, place.end, resources=share, **common)
            for stop, restart in inst.stops:
                inside = _overlap((stop, restart if restart is not None else inst.end), (place.start, place.end))
                if inside is not None:
                    spans.add("stopped", place.host, *inside, resources=share, **common)
    _mask_spans(spans, world)
    return spans.frame().sort("level", "start", "entity_id", nulls_last=True)


def _mask_spans(spans: _Spans, world: World) -> None:
    """Maintenance-flag time outside every allocation: level maintenance, no lease."""
    from exporter.sitegen.truth_pools import flag_down_truth

    masks = flag_down_truth(world)
    for host in world.hosts:
        for start, end in masks.get(host.hostname, []):
            row = next(inc.primary for inc in host.incarnations
                       if inc.primary is not None and inc.primary.start <= start
                       and (inc.primary.end is None or start < inc.primary.end))
            spans.add("maintenance", host, start, end, source_id=row.id, entity_id=host.hostname,
                      resources=whole_host(host), pool=POOL_RESERVABLE)


def node_hours(spans: pl.DataFrame | pl.LazyFrame, *, snapshot: dt.datetime) -> pl.DataFrame:
    """Node-hours per level (open spans run to ``snapshot``): columns level, node_hours."""
    node_us = ((pl.col("end") - pl.col("start")).dt.total_seconds() * pl.col("nodes") * 1e6).round().cast(pl.Int64)
    return (
        spans.lazy()
        .with_columns(pl.col("end").fill_null(pl.lit(snapshot).cast(TIME)))
        .group_by("level")
        .agg((node_us.sum() / 3.6e9).alias("node_hours"))  # integer sum: same bits in any order
        .sort("level")
        .collect()
    )
