"""The legacy Chameleon usage report cache (``chameleon_usage.node_usage_report_cache``) as the old
system would have written it for the simulated site: one row per day and node type.

The legacy columns partition a node type's day: ``total = maint + reserved + used + idle``, where
``reserved`` is reserved-but-unused, ``used`` is instances on reserved nodes and ``idle`` is not
reserved at all (docs/legacy.md). Computed from truth, with the definitional differences a
reader of the old reports meets (docs/synthetic-site.md):

- capacity is a daily head count: a node alive at 00:00 UTC counts 24 hours for that day (the
  old system counted nodes once a day), so enrolment and retirement days differ from the hourly truth;
- ``used`` runs from instance creation to its true end, not clipped to the lease;
- the nightly job failed on about 1 % of days: those rows are missing;
- only bare-metal sites have the table's rows (the old reports counted bare-metal nodes).
"""

from __future__ import annotations

import datetime as dt
import random

import polars as pl

from exporter.columns import BOOKING_RESERVATION, TIME

COLUMNS = ("date", "node_type", "maint_hours", "reserved_hours", "used_hours", "idle_hours", "total_hours")
MISSED_DAY_SHARE = 0.01
_LEVELS = {"committed": "committed", "maintenance": "maint_hours", "occupied": "used_hours"}


def legacy_usage_cache(spans: pl.DataFrame, *, snapshot: dt.datetime, kind: str, seed: int) -> pl.DataFrame:
    """Rows in COLUMNS order, sorted by date and node type; days fully before the snapshot only."""
    if kind != "baremetal":
        return pl.DataFrame(schema={name: (pl.Date if name == "date" else pl.String if name == "node_type"
                                           else pl.Float64) for name in COLUMNS})
    stop = dt.datetime.combine(snapshot.date(), dt.time())  # the job writes a day once it is over
    daily = _daily_hours(spans, stop=stop)
    heads = _midnight_heads(spans, stop=stop)
    table = heads.join(daily, on=["date", "node_type"], how="full", coalesce=True)
    for column in _LEVELS.values():
        table = table.with_columns(pl.col(column).fill_null(0.0) if column in table.columns else pl.lit(0.0).alias(column))
    table = table.with_columns(pl.col("total_hours").fill_null(0.0))
    reserved = (pl.col("committed") - pl.col("used_hours")).clip(lower_bound=0.0)
    idle = (pl.col("total_hours") - pl.col("maint_hours") - pl.col("reserved_hours") - pl.col("used_hours"))
    table = (table.with_columns(reserved.alias("reserved_hours"))
             .with_columns(idle.clip(lower_bound=0.0).alias("idle_hours")))
    missed = _missed_days(table["date"].unique().sort().to_list(), seed)
    return (table.filter(~pl.col("date").is_in(missed)).select(COLUMNS)
            .with_columns(pl.col(name).cast(pl.Float64) for name in COLUMNS[2:]).sort("date", "node_type"))


def _daily_hours(spans: pl.DataFrame, *, stop: dt.datetime) -> pl.DataFrame:
    """date, node_type and one column per level: hours inside each day (occupied: reserved
    instances only; maintenance: maintenance leases only, not the Blazar reservable flag)."""
    chosen = spans.lazy().filter(pl.col("level").is_in(list(_LEVELS)) &
                                 ((pl.col("level") != "occupied") | (pl.col("booking") == BOOKING_RESERVATION)) &
                                 ((pl.col("level") != "maintenance") | pl.col("lease_id").is_not_null()))
    per_day = (
        chosen.with_columns(pl.col("end").fill_null(pl.lit(stop).cast(TIME)).clip(upper_bound=pl.lit(stop).cast(TIME)))
        .filter(pl.col("end") > pl.col("start"))
        .with_columns(pl.datetime_ranges(pl.col("start").dt.truncate("1d"),
                                         (pl.col("end") - pl.duration(microseconds=1)).dt.truncate("1d"),
                                         "1d").alias("day"))
        .explode("day")
        .with_columns(((pl.min_horizontal("end", pl.col("day") + pl.duration(days=1))
                        - pl.max_horizontal("start", "day")).dt.total_seconds() * pl.col("nodes") * 1e6)
                      .round().cast(pl.Int64).alias("node_us"))  # integers: sums independent of order
        .group_by(pl.col("day").dt.date().alias("date"), "node_type", "level")
        .agg((pl.col("node_us").sum() / 3.6e9).alias("hours"))
        .collect()
    )
    if per_day.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "node_type": pl.String})
    wide = per_day.pivot(on="level", index=["date", "node_type"], values="hours")
    return wide.rename({level: column for level, column in _LEVELS.items() if level in wide.columns})


def _midnight_heads(spans: pl.DataFrame, *, stop: dt.datetime) -> pl.DataFrame:
    """date, node_type, total_hours = 24 x the nodes alive at that day's 00:00 UTC."""
    total = spans.filter(pl.col("level") == "total")
    if total.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "node_type": pl.String, "total_hours": pl.Float64})
    first = total["start"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    days = pl.DataFrame({"day": pl.datetime_range(first, stop, "1d", eager=True, closed="left").cast(TIME)})
    return (total.lazy().join(days.lazy(), how="cross")
            .filter((pl.col("start") <= pl.col("day")) & (pl.col("end").is_null() | (pl.col("end") > pl.col("day"))))
            .group_by(pl.col("day").dt.date().alias("date"), "node_type")
            .agg((pl.col("nodes").sum() * 24.0).alias("total_hours"))
            .collect())


def _missed_days(days: list[dt.date], seed: int) -> list[dt.date]:
    """The days the nightly job failed: a fixed share, chosen reproducibly from the seed."""
    rng = random.Random(f"legacy-missed-days-{seed}")
    return [day for day in days if rng.random() < MISSED_DAY_SHARE]
