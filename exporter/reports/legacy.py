"""Comparing the reconstruction with the legacy usage reports (``chameleon_usage.
node_usage_report_cache``: daily hours per node type), join keys (site, date, node_type).

The mapping from legacy columns to this tool's levels, written once here and once in
docs/legacy.md. The legacy columns partition a node type's day (total = maint + reserved + used
+ idle): legacy "reserved" is reserved-but-unused (this tool's ``idle``), and legacy "idle" is
not reserved at all (this tool's ``unreserved``) — legacy "idle" is NOT this tool's ``idle``.
"""

from __future__ import annotations

import polars as pl

from exporter.columns import COUNTED_ELSEWHERE, POOL_RESERVABLE
from exporter.engine.sweepline import order_free_sum
from exporter.reports.ratio import ratio

LEGACY_TABLE = "chameleon_usage.node_usage_report_cache"
LEGACY_LEVELS: dict[str, tuple[str, ...]] = {  # level -> legacy columns whose sum it is compared with
    "total": ("total_hours",),
    "maintenance": ("maint_hours",),
    "committed": ("reserved_hours", "used_hours"),
    "occupied": ("used_hours",),
    "idle": ("reserved_hours",),
    "unreserved": ("idle_hours",),
}
_RESERVABLE = pl.col("pool").cast(pl.String) == POOL_RESERVABLE
_STATE = pl.col("state").cast(pl.String)
# The same levels as timeline leaves (pool, state); "occupied" is the reservable pool's (the
# legacy reports counted instances on reserved nodes); unreserved = total - maintenance - committed.
TIMELINE_LEVELS: dict[str, pl.Expr] = {
    "total": pl.lit(True),
    "maintenance": _RESERVABLE & (_STATE == "maintenance"),
    "committed": _RESERVABLE & _STATE.is_in(["idle", "active", "stopped"]),
    "occupied": _RESERVABLE & _STATE.is_in(["active", "stopped"]),
    "idle": _RESERVABLE & (_STATE == "idle"),
    "unreserved": ~(_RESERVABLE & _STATE.is_in(["maintenance", "idle", "active", "stopped"])),
}
REJECT_LEVELS = ("total", "maintenance", "committed", "occupied")  # compared levels a rejection can name
AGREES_WITHIN = 0.01  # |relative difference| at most 1 %
FINDINGS = ("agrees", "missing_in_databases", "missing_in_legacy", "definition")
KEYS = ["site", "date", "node_type", "level"]


def legacy_levels(legacy: pl.DataFrame, *, site: str) -> pl.DataFrame:
    """site, date, node_type, level, legacy_hours: the legacy rows under LEGACY_LEVELS."""
    daily = legacy.with_columns(pl.col("date").cast(pl.Date), pl.col("node_type").cast(pl.String))
    parts = [daily.select("date", "node_type", pl.lit(level).alias("level"),
                          pl.sum_horizontal([pl.col(c).cast(pl.Float64) for c in columns]).alias("legacy_hours"))
             for level, columns in LEGACY_LEVELS.items()]
    return (pl.concat(parts).group_by("date", "node_type", "level").agg(order_free_sum(pl.col("legacy_hours")))
            .with_columns(pl.lit(site).alias("site")))


def daily_leaves(timeline: pl.DataFrame, *, step_seconds: int) -> pl.DataFrame:
    """site, date, node_type, pool, state, hours: node-hours per leaf and whole UTC day."""
    nodes = timeline.lazy().filter(pl.col("resource").cast(pl.String) == "nodes")
    whole_days = (nodes.group_by(pl.col("timestamp").dt.date().alias("date"))
                  .agg(pl.col("timestamp").n_unique().alias("samples"))
                  .filter(pl.col("samples") * step_seconds == 86400).select("date"))
    return (nodes.group_by(pl.col("site").cast(pl.String), pl.col("timestamp").dt.date().alias("date"),
                           pl.col("node_type").cast(pl.String), pl.col("pool").cast(pl.String),
                           pl.col("state").cast(pl.String))
            .agg(order_free_sum(pl.col("value") * (step_seconds / 3600)).alias("hours"))
            .join(whole_days, on="date", how="semi").collect())


def reconstructed_levels(leaves: pl.DataFrame) -> pl.DataFrame:
    """site, date, node_type, level, reconstructed_hours: TIMELINE_LEVELS over the daily leaves."""
    parts = [leaves.filter(chosen).group_by("site", "date", "node_type")
             .agg(order_free_sum(pl.col("hours")).alias("reconstructed_hours")).with_columns(pl.lit(level).alias("level"))
             for level, chosen in TIMELINE_LEVELS.items()]
    return pl.concat(parts)


def compare(legacy: pl.DataFrame, rebuilt: pl.DataFrame, evidence: pl.DataFrame) -> pl.DataFrame:
    """One row per (site, date, node_type, level) on the days the timeline covers, with a finding.

    ``evidence`` (date, level) lists where the audit shows rejected or unknown hours.
    """
    days = rebuilt.select("date").unique()
    both = (legacy.join(days, on="date", how="semi")
            .join(rebuilt, on=KEYS, how="full", coalesce=True)
            .with_columns(pl.col("reconstructed_hours").fill_null(0.0))
            .join(evidence.with_columns(pl.lit(True).alias("evidenced")), on=["date", "level"], how="left"))
    difference = pl.col("reconstructed_hours") - pl.col("legacy_hours").fill_null(0.0)
    relative = relative_difference(pl.col("reconstructed_hours"), pl.col("legacy_hours"))  # null: no legacy
    finding = (pl.when((pl.col("legacy_hours").is_null() | (pl.col("legacy_hours") == 0))
                       & (pl.col("reconstructed_hours") != 0)).then(pl.lit("missing_in_legacy"))
               .when((pl.col("legacy_hours").fill_null(0.0) == 0) | (relative.abs() <= AGREES_WITHIN))
               .then(pl.lit("agrees"))
               .when((difference < 0) & pl.col("evidenced").fill_null(False)).then(pl.lit("missing_in_databases"))
               .otherwise(pl.lit("definition")))
    return (both.with_columns(difference.alias("difference_hours"), relative.alias("relative_difference"),
                              finding.alias("finding"))
            .select(*KEYS, "legacy_hours", "reconstructed_hours", "difference_hours", "relative_difference",
                    "finding")
            .sort(KEYS))


def relative_difference(reconstructed: pl.Expr, legacy: pl.Expr) -> pl.Expr:
    """(reconstructed - legacy) / legacy by the reports' ratio rule, for a row and for a level's
    sums alike (docs/legacy.md)."""
    return ratio(reconstructed - legacy, legacy)


def evidence(rejected: pl.DataFrame, leaves: pl.DataFrame) -> pl.DataFrame:
    """date, level: where hours of that level may be missing from the databases — a rejected row
    that carried hours of the level (not counted elsewhere; for the derived levels
    idle and unreserved, of any level) overlaps the day, or the day has node-hours of the level
    with an unknown node type or pool."""
    lost = rejected.filter((pl.col("hours") > 0) & ~pl.col("rejection_reason").is_in(COUNTED_ELSEWHERE)
                           & pl.col("start").is_not_null())
    days = lost.select(pl.col("level").fill_null(""), pl.date_ranges(pl.col("start").dt.date(),
                       pl.coalesce("end", "start").dt.date()).alias("date")).explode("date")
    by_rejection = [days.filter(pl.col("level").is_in([level] if level in REJECT_LEVELS else list(REJECT_LEVELS)))
                    .select("date", pl.lit(level).alias("level")) for level in TIMELINE_LEVELS]
    unknown = leaves.filter(((pl.col("node_type") == "unknown") | (pl.col("pool") == "unknown")) & (pl.col("hours") != 0))
    by_unknown = [unknown.filter(chosen).select("date", pl.lit(level).alias("level")) for level, chosen in
                  TIMELINE_LEVELS.items()]
    return pl.concat([*by_rejection, *by_unknown]).unique().sort("date", "level")


def summary(comparison: pl.DataFrame) -> pl.DataFrame:
    """Per level: legacy and reconstructed hours and the number of rows of each finding."""
    counts = [(pl.col("finding") == finding).sum().alias(finding) for finding in FINDINGS]
    return (comparison.group_by("site", "level")
            .agg(order_free_sum(pl.col("legacy_hours")), order_free_sum(pl.col("reconstructed_hours")), *counts)
            .with_columns(relative_difference(pl.col("reconstructed_hours"), pl.col("legacy_hours"))
                          .alias("relative_difference"))
            .sort("site", pl.col("level").replace_strict(list(LEGACY_LEVELS), range(len(LEGACY_LEVELS)))))
