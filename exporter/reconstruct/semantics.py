"""The Nova/Blazar rules that decide each span level, stage by stage.

Every level goes through settle -> cut at snapshot -> [merge] -> [clip into parent] (the books
in ``exporter.reconstruct.books`` record what each step removes). The rules here, in words in
docs/semantics.md:

- total, reservable, committed / maintenance: the host levels, by source priority, manual
  rules and inference (exporter.reconstruct.host_levels), as the site's policy decides
  (exporter.reconstruct.policy).
- occupied: each instance's window split by its placement segments (host and size over time;
  offloaded time clipped ``shelved_offloaded``); reserved pieces clipped into their
  reservation's window on their host (else orphan); an instance inside a maintenance lease is
  booked maintenance; on-demand as they are.
- stopped: stop..resume windows merged per instance, split into its occupied pieces, each with
  that piece's host, size and booking (booking inheritance).
- pool membership: reservable for the reservable/committed/maintenance levels and for
  reserved/maintenance bookings, on-demand for the ondemand level (exporter.reconstruct.pools)
  and on-demand bookings; the unknown pool is total - reservable - ondemand (the leaf table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from exporter.adapters import (
    blazar_hosts, host_resources, instance_actions, nova_hosts, nova_instances, nova_segments, nova_services,
    request_specs,
)
from exporter.columns import (
    BOOKING_MAINTENANCE, BOOKING_RESERVATION, HIERARCHY_CLIPPED, HIERARCHY_DIRECT, HIERARCHY_ROOT, LEVEL_COMMITTED,
    LEVEL_CONFLICT, LEVEL_MAINTENANCE, LEVEL_OCCUPIED, LEVEL_ONDEMAND, LEVEL_RESERVABLE, LEVEL_STOPPED, LEVEL_TOTAL,
    POOL_ONDEMAND, POOL_RESERVABLE,
    SPAN_SCHEMA, conform,
)
from exporter.engine import intervals
from exporter.engine.intervals import hours_between
from exporter.engine.sweepline import order_free_sum
from exporter.reconstruct import host_levels
from exporter.reconstruct.books import SpanBooks
from exporter.reconstruct.policy import Policy

HOST_KEY = ["hypervisor_hostname"]
# What a placement segment gives each piece of an instance's time (``source``: the host's evidence).
PLACEMENT = ("hypervisor_hostname", "vcpus", "memory_mb", "disk_gb", "source")


def host_evidence(frames: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Checkpoint: every host row of nova and Blazar, with its rejection reason (if any)."""
    parts = [nova_hosts.nova_host_windows(frames), nova_services.service_host_windows(frames),
             blazar_hosts.blazar_host_windows(frames)]
    return pl.concat(parts, how="vertical_relaxed").with_columns(pl.lit(LEVEL_TOTAL).alias("level")).collect()


def occupied_spans(books: SpanBooks, instances: pl.DataFrame, segments: pl.DataFrame, committed: pl.DataFrame,
                   policy: Policy) -> pl.DataFrame:
    """Instances split by placement segment; reserved pieces clipped into their reservation's
    window on their host; on-demand ones as they are."""
    windows = instances.with_columns(pl.lit(LEVEL_OCCUPIED).alias("level"))
    rows = books.cut_at_snapshot(books.settled(windows, detail=nova_instances.instance_reject_detail()))
    placed = books.split_into(rows, segments.rename({"host_evidence": "source"}), by=["entity_id"],
                              take=PLACEMENT, reason="shelved_offloaded")
    known = books.dropped(placed, pl.col("hypervisor_hostname").is_null(), reason="missing_host",
                          detail=pl.struct("entity_id", pl.col("start").cast(pl.String)).struct.json_encode())
    settled = host_levels.excluded_rows(books, known, policy, level=LEVEL_OCCUPIED)
    reserved = settled.filter(pl.col("booking") == BOOKING_RESERVATION)
    windows = committed.select("reservation_id", "hypervisor_hostname", "start", "end")
    inside = books.clipped_into(reserved, windows, by=["reservation_id", *HOST_KEY], reason="orphan")
    maintenance = committed.filter(pl.col("level") == LEVEL_MAINTENANCE).get_column("reservation_id").unique()
    inside = inside.with_columns(
        pl.when(pl.col("reservation_id").is_in(maintenance.implode()))
        .then(pl.lit(BOOKING_MAINTENANCE)).otherwise(pl.col("booking")).alias("booking"))
    return pl.concat([inside, settled.filter(pl.col("booking") != BOOKING_RESERVATION)], how="vertical_relaxed")


def ondemand_hours_outside_total(occupied: pl.DataFrame, total: pl.DataFrame, *, snapshot_time: dt.datetime) -> float:
    """Hours of on-demand instances on hosts with no total evidence then (e.g. hard-deleted nova rows)."""
    ondemand = occupied.filter(pl.col("booking") != BOOKING_RESERVATION).select(*HOST_KEY, "start", "end")
    _, outside = intervals.clip_to_parent(ondemand.lazy(), total.lazy(), by=HOST_KEY, open_end=snapshot_time)
    hours = hours_between("start", "end", snapshot_time=snapshot_time)
    return float(outside.select(order_free_sum(hours)).collect().item() or 0.0)


def instance_windows(frames: Mapping[str, pl.LazyFrame], priority: Mapping[str, Sequence[str]] | None = None
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Checkpoint: every instance row with its window and booking (or rejection reason), and the
    placement segments (host and size over time, by ``priority``'s host/size orders) of those
    that can hold a host."""
    # Links first, streamed, so the large spec JSON column is never held whole.
    links = request_specs.reservation_links(frames["nova_api.request_specs"]).collect(engine="streaming")
    windows = nova_instances.instance_windows(frames, links=links.lazy()).collect()
    segments = nova_segments.placement_segments(frames, nova_instances.placeable(windows), priority=priority)
    return nova_instances.with_placements(windows, segments), segments


def stop_windows(frames: Mapping[str, pl.LazyFrame], instances: pl.DataFrame) -> pl.DataFrame:
    """Checkpoint: every stopping action with its window (or rejection reason)."""
    return instance_actions.stop_windows(frames, instances.lazy()).with_columns(
        pl.lit(LEVEL_STOPPED).alias("level")).collect()


def stopped_spans(books: SpanBooks, windows: pl.DataFrame, occupied: pl.DataFrame,
                   policy: Policy) -> pl.DataFrame:
    settled = host_levels.settled_rows(books, windows, policy, level=LEVEL_STOPPED,
                                       detail=instance_actions.stop_reject_detail())
    merged = books.merged(settled, by=["entity_id"])
    # Split like the instance's occupancy: each piece has the host, size and booking (maintenance
    # when the instance is in a maintenance lease) of the occupied piece it falls in.
    return books.split_into(merged, occupied, by=["entity_id"], take=(*PLACEMENT, "booking"))


def host_context(frames: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame) -> dict[str, pl.LazyFrame]:
    """What the resource rule needs about every host: usable rows, capabilities, ironic/KVM."""
    usable = hosts.filter(pl.col("rejection_reason").is_null()).lazy()
    blazar_rows = usable.filter(pl.col("source_table") == "blazar.computehosts")
    capabilities = blazar_hosts.named_capabilities(frames)
    return {
        "host_windows": usable,
        "attributes": blazar_hosts.host_attributes(blazar_rows, capabilities),
        "kinds": host_resources.host_kinds(usable),
    }


def canonical_spans(spans: pl.DataFrame, *, site: str, context: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Spans of one stage in SPAN_SCHEMA: resources, node_type, pool and hierarchy_status."""
    level = spans.get_column("level")
    whole_host = bool(level.is_in([LEVEL_TOTAL, LEVEL_RESERVABLE, LEVEL_ONDEMAND]).all())
    own = _own_resources(spans)
    enriched = host_resources.with_host_resources(own.lazy(), whole_host=whole_host, **context)
    if "booking" not in own.columns:
        enriched = enriched.with_columns(pl.lit(None, dtype=pl.String).alias("booking"))
    changed = (pl.col("start") != pl.col("original_start")) | pl.col("end").ne_missing(pl.col("original_end"))
    return conform(enriched.with_columns(
        pl.lit(site).alias("site"),
        pl.when(pl.col("level").is_in([LEVEL_TOTAL, LEVEL_CONFLICT])).then(None)
        .when(pl.col("level").is_in([LEVEL_RESERVABLE, LEVEL_COMMITTED, LEVEL_MAINTENANCE])).then(pl.lit(POOL_RESERVABLE))
        .when(pl.col("booking").is_in([BOOKING_RESERVATION, BOOKING_MAINTENANCE])).then(pl.lit(POOL_RESERVABLE))
        .otherwise(pl.lit(POOL_ONDEMAND)).alias("pool"),
        (pl.coalesce("source", "source_table") if "source" in own.columns else pl.col("source_table")).alias("source"),
        pl.when(pl.col("level") == LEVEL_TOTAL).then(pl.lit(HIERARCHY_ROOT))
        .when(changed).then(pl.lit(HIERARCHY_CLIPPED)).otherwise(pl.lit(HIERARCHY_DIRECT)).alias("hierarchy_status"),
    ), SPAN_SCHEMA)


def _own_resources(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` + own_vcpus/own_memory_mb/own_disk_gb: an instance's or a reservation slot's size."""
    columns = spans.columns
    if "slot_vcpus" in columns:
        sizes = {f"own_{c}": pl.col(f"slot_{c}") for c in host_resources.INVENTORY}
    elif "vcpus" in columns and "booking" in columns:
        sizes = {f"own_{c}": pl.col(c) for c in host_resources.INVENTORY}
    else:
        sizes = {f"own_{c}": pl.lit(None, dtype=pl.Float64) for c in host_resources.INVENTORY}
    sized = spans.with_columns(**sizes)
    return sized.drop([c for c in ("node_type", "gpus", "nodes", *host_resources.INVENTORY) if c in columns])
