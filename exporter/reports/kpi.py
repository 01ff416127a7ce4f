"""KPI tables: resource-hours per level over calendar periods, from a timeline — the node timeline
(per node_type) or an edge site's device timeline (per machine_name, device-hours: a device is
one unit, as in the devices family).

A timeline row's value is the mean over [timestamp, timestamp + step), so the hours of a period
are the sum of value x step over the rows whose timestamp falls in it — the same number the
node-hours dashboard reads from the counters (their difference at the period's two ends).
Sums are order-free (engine.sweepline.order_free_sum), so the files are the same on every run.
"""

from __future__ import annotations

import polars as pl

from exporter.engine.sweepline import order_free_sum
from exporter.reports.levels import all_levels
from exporter.reports.ratio import ratio

PERIODS = {"day": "1d", "week": "1w", "month": "1mo", "quarter": "1q", "year": "1y"}  # weeks start on Monday
RESOURCES = {"node": "nodes", "vcpu": "vcpus", "gpu": "gpus"}  # column prefix -> timeline resource
DEVICE_RESOURCES = {"device": "nodes"}  # device spans carry nodes = 1 (one device)
DEVICE_TYPE = "machine_name"  # a device's hardware model (its node_type in the device timeline)
KEYS = ("site", "period", "period_start", "period_end", "node_type")
# Utilization ratios of node-hours (device-hours): numerator level, denominator level.
RATIOS = {"utilization": ("committed", "reservable"), "occupied_share": ("occupied", "total"),
          "active_share": ("active", "total")}


def kpi_table(timeline: pl.DataFrame | pl.LazyFrame, *, period: str, step_seconds: int,
              resources: dict[str, str] = RESOURCES) -> pl.DataFrame:
    """One row per (site, period_start, node_type): ``<resource>_hours_<level>`` for every resource
    and level, the RATIOS (of the first resource), ``hours_covered`` and ``complete`` (the timeline
    covers the whole period)."""
    every = PERIODS[period]
    levels = all_levels(timeline)
    leaves = (  # first sum each leaf per period (small), then the levels over the leaves
        timeline.lazy()
        .filter(pl.col("resource").cast(pl.String).is_in(list(resources.values())))
        .with_columns(pl.col("timestamp").dt.truncate(every).alias("period_start"))
        .group_by(pl.col("site").cast(pl.String), "period_start", pl.col("node_type").cast(pl.String),
                  "resource", "pool", "state")
        .agg(order_free_sum(pl.col("value") * (step_seconds / 3600)).alias("hours"), pl.len().alias("samples"))
    )
    sums = [order_free_sum(pl.col("hours").filter((pl.col("resource").cast(pl.String) == resource) & chosen))
            .alias(f"{prefix}_hours_{level}")
            for prefix, resource in resources.items() for level, chosen in levels.items()]
    table = leaves.group_by("site", "period_start", "node_type").agg(*sums, pl.col("samples").max()).collect()
    return (
        table.with_columns(pl.lit(period).alias("period"),
                      pl.col("period_start").dt.offset_by(every).alias("period_end"),
                      (pl.col("samples") * step_seconds / 3600).alias("hours_covered"))
        .with_columns(((pl.col("period_end") - pl.col("period_start")).dt.total_seconds() / 3600
                       == pl.col("hours_covered")).alias("complete"),
                      *[ratio(pl.col(f"{unit}_hours_{numerator}"), pl.col(f"{unit}_hours_{denominator}")).alias(name)
                        for unit in list(resources)[:1] for name, (numerator, denominator) in RATIOS.items()])
        .with_columns(pl.col("period_start").dt.date(), pl.col("period_end").dt.date())
        .select(*KEYS, "hours_covered", "complete", *[n for n in table.columns if "_hours_" in n], *RATIOS)
        .sort("site", "period_start", "node_type")
    )


def device_kpi_table(device_timeline: pl.DataFrame | pl.LazyFrame, *, period: str, step_seconds: int) -> pl.DataFrame:
    """The KPI table of an edge site's devices: one row per (site, period_start, machine_name),
    ``device_hours_<level>`` and the RATIOS of device-hours."""
    table = kpi_table(device_timeline, period=period, step_seconds=step_seconds, resources=DEVICE_RESOURCES)
    return table.rename({"node_type": DEVICE_TYPE})


