"""Lead times per lease: how far ahead users book, and how long until they actually start.

For every lease of a non-maintenance project (docs/semantics.md "Lead times"):
- requested lead time = start_date − created_at;
- first launch = created_at of the earliest instance that launched (launched_at set) under any
  of the lease's reservations (launched_at itself is reset by unshelve/rebuild, so it is not used);
- effective lead time = first launch − created_at; start delay = first launch − start_date
  (both null when nothing launched).
The timeline summarises them per site and creation day: p50, p90 (linear interpolation) and mean
of each type over the leases created that day, in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from exporter.adapters import common
from exporter.columns import TIME
from exporter.metrics import LEAD_TIME

LEADTIME_SCHEMA: dict[str, pl.DataType] = {
    "lease_id": pl.String(), "site": pl.String(), "node_types": pl.String(), "project_id": pl.String(),
    "created_at": TIME, "start_date": TIME, "first_launch": TIME,
    "requested_lead_time": pl.Duration("us"), "effective_lead_time": pl.Duration("us"),
    "start_delay": pl.Duration("us"),
    "source_table": pl.String(),  # evidence: the lease row (source_table, lease_id) ...
    "first_instance_uuid": pl.String(),  # ... and the instance row that launched first
}
TYPES = {"requested": "requested_lead_time", "effective": "effective_lead_time", "start_delay": "start_delay"}
STATISTICS = ("p50", "p90", "mean")
LEADTIME_TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "site": pl.String(), "timestamp": TIME, "leadtime_type": pl.String(), "statistic": pl.String(),
    "value": pl.Float64(),
}


def lease_leadtimes(frames: Mapping[str, pl.LazyFrame], instances: pl.DataFrame, bookings: pl.DataFrame, *,
                    site: str, maintenance_projects: Sequence[str]) -> pl.DataFrame:
    """LEADTIME_SCHEMA, one row per non-maintenance lease with a created_at and a start_date.

    ``instances``: the instance windows (entity_id, reservation_id, created_at, launched_at);
    ``bookings``: exporter.reconstruct.bookings (for the node types each lease booked).
    """
    leases = common.table_rows(frames, "blazar.leases", {
        "id": common.ID, "project_id": common.TEXT, "start_date": common.WHEN, "created_at": common.WHEN})
    reservations = common.table_rows(frames, "blazar.reservations", {"id": common.ID, "lease_id": common.ID})
    launched = (instances.lazy().filter(pl.col("launched_at").is_not_null() & pl.col("reservation_id").is_not_null())
                .select("entity_id", "reservation_id", "created_at")  # a repeated row changes no first()
                .join(reservations.select(pl.col("id").alias("reservation_id"), "lease_id").unique("reservation_id"),
                      on="reservation_id")
                .sort("created_at", "entity_id")
                .group_by("lease_id").agg(pl.col("created_at").first().alias("first_launch"),
                                          pl.col("entity_id").first().alias("first_instance_uuid")))
    types = _node_types(bookings)
    first = pl.col("first_launch")
    return (leases.unique("id", keep="first")
            .filter(~pl.col("project_id").is_in(list(maintenance_projects)).fill_null(True)
                    & pl.col("created_at").is_not_null() & pl.col("start_date").is_not_null())
            .select(pl.col("id").alias("lease_id"), "project_id", "created_at", "start_date")
            .join(launched, on="lease_id", how="left").join(types, on="lease_id", how="left")
            .with_columns(pl.lit(site).alias("site"), pl.lit("blazar.leases").alias("source_table"),
                          (pl.col("start_date") - pl.col("created_at")).alias("requested_lead_time"),
                          (first - pl.col("created_at")).alias("effective_lead_time"),
                          (first - pl.col("start_date")).alias("start_delay"))
            .select([pl.col(name).cast(dtype) for name, dtype in LEADTIME_SCHEMA.items()])
            .sort("created_at", "lease_id").collect())


def _node_types(bookings: pl.DataFrame) -> pl.LazyFrame:
    """lease_id, node_types: the node types a lease booked, sorted, comma-joined ("" when none is named).

    Each node type is a bit (a site has a few dozen at most), a lease's set the OR of its bookings'
    bits, and each distinct set is spelled once: the per-lease ``unique().sort()`` of the text took
    0.39 s of 500 x 10's 285k bookings where this takes 0.09 s (BENCHMARKS.md session 10)."""
    names = bookings.get_column("node_type").unique().drop_nulls().sort()
    if names.len() > 64:  # more node types than bits in a word: per lease, as text
        return bookings.lazy().group_by("lease_id").agg(
            pl.col("node_type").unique().sort().str.join(",").alias("node_types"))
    bits = pl.Series([1 << code for code in range(names.len())], dtype=pl.UInt64)
    sets = (bookings.lazy()
            .select("lease_id", pl.lit(bits).gather(pl.col("node_type").cast(pl.Enum(names)).to_physical()).alias("set"))
            .group_by("lease_id").agg(pl.col("set").bitwise_or().fill_null(0)).collect())
    distinct = sets.get_column("set").unique()
    spelled = pl.DataFrame({"set": distinct, "node_types": [
        ",".join(name for code, name in enumerate(names) if found >> code & 1) for found in distinct]})
    return sets.lazy().join(spelled.lazy(), on="set").select("lease_id", "node_types")


def leadtime_timeline(leadtimes: pl.DataFrame) -> pl.DataFrame:
    """LEADTIME_TIMELINE_SCHEMA: per site, creation day (00:00 UTC), type and statistic, a value in
    seconds; a day without a value of a type has no row for it."""
    parts = []
    for name, column in TYPES.items():
        seconds = pl.col(column).dt.total_microseconds() / 1e6
        parts.append(leadtimes.lazy().filter(pl.col(column).is_not_null())
                     .group_by("site", pl.col("created_at").dt.truncate("1d").alias("timestamp"))
                     .agg(p50=seconds.quantile(0.5, "linear"), p90=seconds.quantile(0.9, "linear"),
                          mean=seconds.mean())
                     .unpivot(STATISTICS, index=["site", "timestamp"], variable_name="statistic")
                     .with_columns(leadtime_type=pl.lit(name)))
    return (pl.concat(parts).select([pl.col(n).cast(t) for n, t in LEADTIME_TIMELINE_SCHEMA.items()])
            .sort("site", "timestamp", "leadtime_type", "statistic").collect())


def leadtime_family(timeline: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The timeline as the lead-time summary series (exporter.metrics.LEAD_TIME)."""
    return {LEAD_TIME.name: timeline.select("site", "leadtime_type", "statistic", "timestamp", "value")}
