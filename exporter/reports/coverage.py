"""Coverage: per year and level, how many span-hours were counted, clipped (recorded) or rejected
(by reason), how many landed in ``unknown`` (node type or pool without evidence), and which source
tables evidenced them — the table behind "reliable from 2022, partial before".

Counted, clipped and rejected come from the run's audit.json (the invariant books, attributed to
the year a span starts); unknown comes from the timeline (node-hours, by the hour's year) and, on
an edge site, the device timeline (device-hours of an unknown model: devices retired without a row).
"""

from __future__ import annotations

import polars as pl

from exporter.columns import COUNTED_ELSEWHERE
from exporter.engine.sweepline import order_free_sum
from exporter.layout import DEVICE_TIMELINE_FILE, TIMELINE_FILE
from exporter.reports.levels import LEVELS
from exporter.reports.ratio import ratio

KINDS = ("counted", "clipped", "rejected")
UNKNOWN = "unknown"
LONG_SCHEMA = {"site": pl.String, "year": pl.Int32, "level": pl.String, "kind": pl.String,
               "source_table": pl.String, "reason": pl.String, "rows": pl.Int64, "hours": pl.Float64}


def coverage_long(audit: dict, timeline: pl.DataFrame, *, step_seconds: int,
                  device_timeline: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per (year, level, kind, source_table, reason) with its hours (and rejected rows)."""
    site = str(audit.get("site", ""))
    rows = [{"site": site, "year": int(entry["year"]), "level": entry.get("level") or "none", "kind": kind,
             "source_table": entry.get("source_table"), "reason": entry.get("reason"),
             "rows": entry.get("rows"), "hours": float(entry["hours"])}
            for kind in KINDS for entry in audit.get(kind, []) if entry.get("year") is not None]
    books = pl.DataFrame(rows, schema=LONG_SCHEMA) if rows else pl.DataFrame(schema=LONG_SCHEMA)
    levels = list(audit.get("levels") or LEVELS)
    frames = [books, unknown_hours(timeline, levels=levels, step_seconds=step_seconds)]
    if device_timeline is not None:
        frames.append(unknown_hours(device_timeline, levels=levels, step_seconds=step_seconds,
                                    source=DEVICE_TIMELINE_FILE))
    return pl.concat(frames).sort("site", "year", "level", "kind", "source_table", "reason", nulls_last=True)


def unknown_hours(timeline: pl.DataFrame, *, levels: list[str], step_seconds: int,
                  source: str = TIMELINE_FILE) -> pl.DataFrame:
    """Node-hours (device-hours) per year and level whose node type (model) or pool is ``unknown``."""
    unknown = (pl.col("node_type").cast(pl.String) == UNKNOWN) | (pl.col("pool").cast(pl.String) == UNKNOWN)
    hours = pl.col("value") * (step_seconds / 3600)
    chosen = timeline.lazy().filter((pl.col("resource").cast(pl.String) == "nodes") & unknown)
    parts = [chosen.filter(LEVELS[level]).group_by(pl.col("site").cast(pl.String),
                                                     pl.col("timestamp").dt.year().cast(pl.Int32).alias("year"))
             .agg(order_free_sum(hours).alias("hours")).with_columns(pl.lit(level).alias("level"))
             for level in levels if level in LEVELS]
    if not parts:
        return pl.DataFrame(schema=LONG_SCHEMA)
    found = pl.concat(parts).collect().filter(pl.col("hours") != 0)
    return found.with_columns(pl.lit(UNKNOWN).alias("kind"), pl.lit(source).alias("source_table"),
                              pl.lit(None, pl.String).alias("reason"), pl.lit(None, pl.Int64).alias("rows")
                              ).select(list(LONG_SCHEMA)).cast(LONG_SCHEMA)


def coverage_summary(long: pl.DataFrame) -> pl.DataFrame:
    """One row per (site, year, level): hours counted / clipped / rejected (losing hours) / unknown,
    the share counted of counted + clipped + rejected, the hours counted elsewhere (clipped or
    rejected with a reason in COUNTED_ELSEWHERE: in neither of those two columns), every rejected
    row's hours by reason (counted elsewhere or not), and the source tables that evidenced the
    counted hours (docs/reports.md)."""
    elsewhere = pl.col("reason").is_in(COUNTED_ELSEWHERE).fill_null(False)

    def hours(name: str, chosen: pl.Expr) -> pl.Expr:
        return order_free_sum(pl.col("hours").filter(chosen)).alias(name)

    rejected = (long.filter(pl.col("kind") == "rejected").group_by("site", "year", "level", "reason")
                .agg(order_free_sum(pl.col("hours"))).sort("reason")
                .group_by("site", "year", "level", maintain_order=True)
                .agg(pl.format("{} {}", "reason", pl.col("hours").round(1)).str.join("; ").alias("rejected_by_reason")))
    sources = (long.filter(pl.col("kind") == "counted").group_by("site", "year", "level")
               .agg(pl.col("source_table").unique().sort().str.join(", ").alias("sources")))
    summary = (long.group_by("site", "year", "level")
               .agg(*[hours(kind, (pl.col("kind") == kind) & ~elsewhere) for kind in (*KINDS, UNKNOWN)],
                    hours("counted_elsewhere", elsewhere))
               .join(rejected, on=["site", "year", "level"], how="left")
               .join(sources, on=["site", "year", "level"], how="left"))
    booked = pl.col("counted") + pl.col("clipped") + pl.col("rejected")
    return (summary.with_columns(ratio(pl.col("counted"), booked).alias("counted_share"))
            .select("site", "year", "level", *KINDS, UNKNOWN, "counted_share", "counted_elsewhere",
                    "rejected_by_reason", "sources")
            .sort("site", "year", "level"))
