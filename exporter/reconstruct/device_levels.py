"""The device levels of a CHI@Edge site, through the same books as the host levels.

Stages (settle -> cut at snapshot -> [merge] -> [clip into parent]; rules in the adapters
exporter.adapters.blazar_devices and zun_containers, in words in docs/semantics.md "Devices"):

1. total       devices rows per device name, merged                           -> total;
               a device retired before May 2022 (no row, but allocations name it): from its first
               allocation's start to its last one's end (source inference, model unknown)
2. reservable  the same rows, into total (every device is a Blazar device)
3. committed   device allocations in their lease window, into reservable     -> committed / maintenance;
               a device now marked reservable = 0: maintenance from its updated_at, into reservable,
               minus the time a lease holds it (under_commitment, as host masks)
4. occupied    each container × every device its reservation holds (Zun stores no device: the
               reservation's devices count as occupied while any of its containers exists), clipped
               into that device's committed window (else orphan), merged per (reservation, device)
5. stopped     stop windows × the reservation's devices, minus the time another container of the
               reservation runs there, into occupied, merged per (reservation, device)

Device spans use the span schema with hypervisor_hostname = device name, node_type = the device's
``machine_name`` capability and nodes = 1 (a whole device); the other resources are 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from exporter.adapters import blazar_devices, common, zun_containers
from exporter.columns import (
    BOOKING_MAINTENANCE, HIERARCHY_CLIPPED, HIERARCHY_DIRECT, HIERARCHY_ROOT, LEVEL_MAINTENANCE, LEVEL_OCCUPIED,
    LEVEL_RESERVABLE, LEVEL_STOPPED, LEVEL_TOTAL, POOL_RESERVABLE, SPAN_SCHEMA, UNKNOWN_NODE_TYPE, conform,
)
from exporter.engine import intervals
from exporter.reconstruct import inference, masks
from exporter.reconstruct.books import SpanBooks
from exporter.timetype import TIME

KEY = ["hypervisor_hostname"]
RETIRED_SPAN_TYPES = {LEVEL_TOTAL: "inferred_device", LEVEL_RESERVABLE: "inferred_device_reservable"}
RETIRED_EVIDENCE = "allocations_of_rowless_device"
SLOT = ["reservation_id", "hypervisor_hostname"]  # one device of one reservation


def device_spans(books: SpanBooks, frames: Mapping[str, pl.LazyFrame], *, site: str,
                 maintenance_projects: Sequence[str], complete_since: dt.datetime | None) -> pl.DataFrame:
    """Every device level's spans in SPAN_SCHEMA (empty when the site has no device rows);
    ``complete_since``: when the devices table is known to keep retired devices (None: never)."""
    allocations = blazar_devices.allocation_windows(frames, maintenance_projects=maintenance_projects,
                                                    complete_since=complete_since).collect()
    rows = blazar_devices.device_windows(frames).collect()
    windows = pl.concat([rows, _retired_devices(allocations)],
                        how="diagonal_relaxed").with_columns(pl.lit(LEVEL_TOTAL).alias("level"))
    detail = blazar_devices.device_reject_detail()
    total = books.merged(books.cut_at_snapshot(books.settled(windows, detail=detail)), by=KEY)
    reservable = books.clipped_into(books.merged(books.cut_at_snapshot(books.settled(
        windows.with_columns(pl.lit(LEVEL_RESERVABLE).alias("level")), detail=detail)), by=KEY), total, by=KEY)
    committed = books.clipped_into(books.cut_at_snapshot(books.settled(
        allocations, detail=blazar_devices.allocation_reject_detail())), reservable, by=KEY)
    failing = books.clipped_into(books.merged(books.cut_at_snapshot(books.settled(
        _unreservable(windows), detail=detail)), by=KEY), reservable, by=KEY)
    failing = masks.outside_commitments(books, failing, committed, by=KEY)
    slots = allocations.filter(pl.col("rejection_reason").is_null()).select(
        "reservation_id", "hypervisor_hostname", pl.col("entity_id").alias("device_id")).unique(maintain_order=True)
    containers = zun_containers.container_windows(frames).collect()
    occupied_pieces, occupied = _occupied(books, containers, slots, committed)
    stops = zun_containers.stop_windows(frames, containers.filter(pl.col("rejection_reason").is_null()).lazy())
    stopped = _stopped(books, stops.collect(), slots, occupied_pieces, occupied)
    models = _models(frames, rows)
    levels = [total, reservable, committed, failing, _with_maintenance(occupied, committed),
              _with_maintenance(stopped, committed)]
    return pl.concat([_canonical(level, site=site, models=models) for level in levels], how="vertical")


def _retired_devices(allocations: pl.DataFrame) -> pl.DataFrame:
    """Devices retired before their table kept retired rows, from the usable allocations naming
    them: one window per device id from its first allocation's start to its last one's end (a
    devices row is one window, and its id is never reused, so the device existed in between)."""
    usable = allocations.filter(pl.col("retired_device") & pl.col("rejection_reason").is_null())
    return usable.group_by("entity_id").agg(pl.col("start").min(), pl.col("end").max()).sort("entity_id").select(
        pl.lit(inference.SOURCE).alias("source_table"), pl.col("entity_id").alias("source_id"), "entity_id",
        pl.col("entity_id").alias("hypervisor_hostname"), "start", "end",
        pl.lit(None, dtype=TIME).alias("reservable_until"), pl.lit(None, dtype=pl.String).alias("rejection_reason"))


def _unreservable(windows: pl.DataFrame) -> pl.DataFrame:
    """Devices now marked unreservable: maintenance from the row's updated_at (only the current
    value is stored) to its end."""
    failing = windows.filter(pl.col("reservable_until").is_not_null()).with_columns(
        pl.lit(LEVEL_MAINTENANCE).alias("level"), pl.max_horizontal("start", "reservable_until").alias("start"))
    return failing.with_columns(pl.coalesce("rejection_reason", pl.when(pl.col("end") <= pl.col("start"))
                                            .then(pl.lit("never_effective"))).alias("rejection_reason"))


def _on_devices(rows: pl.DataFrame, slots: pl.DataFrame, *, level: str) -> pl.DataFrame:
    """Each row once per device of its reservation (source_id ``<row id>/<device id>``); a row whose
    reservation holds no device stays one row with no device (it ends as an orphan)."""
    paired = rows.join(slots, on="reservation_id", how="left", maintain_order="left")
    return paired.with_columns(
        pl.lit(level).alias("level"),
        pl.when(pl.col("device_id").is_not_null()).then(pl.concat_str("source_id", pl.lit("/"), "device_id"))
        .otherwise(pl.col("source_id")).alias("source_id"),
        pl.col("container").alias("entity_id"),
    )


def _occupied(books: SpanBooks, containers: pl.DataFrame, slots: pl.DataFrame,
              committed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pieces per container and device, the device occupancy merged per reservation and device)."""
    pairs = _on_devices(containers, slots, level=LEVEL_OCCUPIED)
    settled = books.cut_at_snapshot(books.settled(pairs, detail=zun_containers.container_reject_detail()))
    windows = committed.select(*SLOT, "start", "end")
    pieces = books.clipped_into(settled, windows, by=SLOT, reason="orphan")
    return pieces, books.merged(pieces, by=SLOT)


def _with_maintenance(spans: pl.DataFrame, committed: pl.DataFrame) -> pl.DataFrame:
    """Containers inside a maintenance lease are booked maintenance (as instances are)."""
    maintenance = committed.filter(pl.col("level") == LEVEL_MAINTENANCE).get_column("reservation_id").unique()
    return spans.with_columns(pl.when(pl.col("reservation_id").is_in(maintenance.implode()))
                              .then(pl.lit(BOOKING_MAINTENANCE)).otherwise(pl.col("booking")).alias("booking"))


def _stopped(books: SpanBooks, stops: pl.DataFrame, slots: pl.DataFrame, pieces: pl.DataFrame,
             occupied: pl.DataFrame) -> pl.DataFrame:
    pairs = _on_devices(stops, slots, level=LEVEL_STOPPED)
    settled = books.cut_at_snapshot(books.settled(pairs, detail=zun_containers.stop_reject_detail()))
    # a device is stopped only while no container of its reservation runs on it; that time is the
    # running container's (counted as occupied), so a stop loses it as duplicate_entity, wholly
    # or in part, like a Nova stop under an earlier stop of its instance (books.merged)
    own_stops = settled.select(pl.col("entity_id"), *SLOT, "start", "end")
    _, running = intervals.clip_to_parent(pieces.select("entity_id", *SLOT, "start", "end").lazy(),
                                          own_stops.lazy(), by=["entity_id", *SLOT], open_end=books.snapshot_time)
    idle = books.clipped_into(settled, running.select(*SLOT, "start", "end").collect(), by=SLOT, outside=True)
    inside = books.clipped_into(idle, occupied.select(*SLOT, "start", "end"), by=SLOT)
    return books.merged(inside, by=SLOT)


def _models(frames: Mapping[str, pl.LazyFrame], rows: pl.DataFrame) -> pl.DataFrame:
    """hypervisor_hostname (device name) -> node_type (machine_name); the newest of a name's
    ``rows`` (device_windows) wins."""
    names = rows.lazy().select("entity_id", "hypervisor_hostname", "start")
    return (names.join(blazar_devices.device_models(frames), on="entity_id", how="left")
            .sort("start", *common.id_order("entity_id"), nulls_last=False).group_by("hypervisor_hostname")
            .agg(pl.col("node_type").last()).collect())


def _canonical(spans: pl.DataFrame, *, site: str, models: pl.DataFrame) -> pl.DataFrame:
    changed = (pl.col("start") != pl.col("original_start")) | pl.col("end").ne_missing(pl.col("original_end"))
    booking = pl.col("booking") if "booking" in spans.columns else pl.lit(None, dtype=pl.String)
    return conform(spans.join(models, on="hypervisor_hostname", how="left", maintain_order="left").with_columns(
        pl.lit(site).alias("site"),
        pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE),
        booking.alias("booking"),
        pl.lit(1.0).alias("nodes"), *(pl.lit(0.0).alias(r) for r in ("vcpus", "memory_mb", "disk_gb", "gpus")),
        pl.when(pl.col("level") == LEVEL_TOTAL).then(None).otherwise(pl.lit(POOL_RESERVABLE)).alias("pool"),
        pl.col("source_table").alias("source"),
        pl.when(pl.col("level") == LEVEL_TOTAL).then(pl.lit(HIERARCHY_ROOT))
        .when(changed).then(pl.lit(HIERARCHY_CLIPPED)).otherwise(pl.lit(HIERARCHY_DIRECT)).alias("hierarchy_status"),
        *_retired_kinds(),
    ), SPAN_SCHEMA)


def _retired_kinds() -> list[pl.Expr]:
    """span_type, evidence and confidence of a retired device's existence (the host inference's
    kinds would name reserved instances); null elsewhere, so span_kinds fills them."""
    inferred = pl.col("source_table") == inference.SOURCE
    kind = pl.col("level").replace_strict(RETIRED_SPAN_TYPES, default=None)
    return [pl.when(inferred).then(kind).alias("span_type"),
            pl.when(inferred).then(pl.lit(RETIRED_EVIDENCE)).alias("evidence"),
            pl.when(inferred).then(pl.lit("inferred")).alias("confidence")]
