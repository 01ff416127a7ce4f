"""The demo's comparisons with the generator's truth: node-hours per level, per pool, and (edge)
device-hours per level against what the databases can still tell.

Each table has the truth, the effect the truth cannot show in the data (the demo rule's effect,
or the hours the databases lost), the reconstruction, and the difference of the reconstruction
from truth + effect in percent.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.layout import DEVICE_SPANS_FILE
from exporter.run import RunResult
from exporter.sitegen import GeneratedSite


@dataclass(frozen=True)
class DemoRule:
    """The demo's one manual rule: leave out ``host`` during [start, end)."""

    id: str
    host: str
    start: dt.datetime
    end: dt.datetime
    path: Path


def levels_versus_truth(generated: GeneratedSite, run: RunResult, rule: DemoRule | None, window: dict) -> pl.DataFrame:
    """Node-hours per level over the simulated period: truth, the rule's effect on it (the
    matched host's truth inside the rule's range, negative), reconstruction, and the difference
    of reconstruction from truth + effect. (The ondemand level is pool evidence: see the pools.)"""
    spans = pl.read_parquet(generated.truth_dir / "truth_spans.parquet")
    truth = node_hours(spans, **window)
    effect = truth.clear() if rule is None else node_hours(
        spans.filter(pl.col("hypervisor_hostname") == rule.host), start=max(rule.start, window["start"]),
        end=min(rule.end, window["end"]), open_end=generated.end)
    rebuilt = node_hours(pl.read_parquet(run.timeline_dir / "spans.parquet").filter(pl.col("level") != "ondemand"),
                          **window)
    expected = pl.col("truth") + pl.col("rules")
    return (
        truth.join(effect, on="level", how="full", coalesce=True, suffix="_rules")
        .join(rebuilt, on="level", how="full", coalesce=True, suffix="_rebuilt")
        .select("level", pl.col("node_hours").fill_null(0.0).alias("truth"),
                (-pl.col("node_hours_rules").fill_null(0.0)).alias("rules"),
                pl.col("node_hours_rebuilt").fill_null(0.0).alias("reconstructed"))
        .with_columns(
            pl.when(expected > 0).then((pl.col("reconstructed") - expected) / expected * 100)
            .otherwise(None).alias("difference_pct"))
        .sort("level")
    )


def pools_versus_truth(generated: GeneratedSite, run: RunResult, rule: DemoRule | None,
                        window: dict) -> pl.DataFrame:
    """Node-hours per pool: the true pool, what the written data evidences (truth_pools evidence:
    the hours it decides for that pool; for unknown, the hours it cannot decide), the rule's effect
    on that, the reconstruction
    (reservable and ondemand levels; unknown = total - both), and its difference from decidable + rules."""
    truth = pl.read_parquet(generated.truth_dir / "truth_pools.parquet").filter(pl.col("evidence") != "absent")
    true_pool = node_hours(truth.with_columns(pl.lit(1.0).alias("nodes")), by="pool", **window)
    decidable = truth.with_columns(pl.lit(1.0).alias("nodes"), pl.col("evidence").alias("decided"))
    by_evidence = node_hours(decidable, by="decided", **window).rename({"decided": "pool"})
    effect = by_evidence.clear() if rule is None else node_hours(
        decidable.filter(pl.col("hypervisor_hostname") == rule.host), by="decided",
        start=max(rule.start, window["start"]), end=min(rule.end, window["end"]),
        open_end=window["open_end"]).rename({"decided": "pool"})
    levels = dict(node_hours(pl.read_parquet(run.timeline_dir / "spans.parquet"), **window).iter_rows())
    rebuilt = {"reservable": levels.get("reservable", 0.0), "ondemand": levels.get("ondemand", 0.0)}
    rebuilt["unknown"] = levels.get("total", 0.0) - rebuilt["reservable"] - rebuilt["ondemand"]
    table = pl.DataFrame({"pool": list(rebuilt), "reconstructed": list(rebuilt.values())})
    expected = pl.col("decidable") + pl.col("rules")
    return (
        table.join(true_pool.rename({"node_hours": "truth"}), on="pool", how="left")
        .join(by_evidence.rename({"node_hours": "decidable"}), on="pool", how="left")
        .join(effect.rename({"node_hours": "rules"}), on="pool", how="left")
        .select("pool", *(pl.col(c).fill_null(0.0) for c in ("truth", "decidable")),
                (-pl.col("rules").fill_null(0.0)).alias("rules"), "reconstructed")
        .with_columns(pl.when(expected > 0).then((pl.col("reconstructed") - expected) / expected * 100)
                      .otherwise(None).alias("difference_pct"))
    )


def devices_versus_truth(generated: GeneratedSite, run: RunResult, window: dict) -> pl.DataFrame:
    """Device-hours per level: true, what the databases lost (truth.json, negative), reconstructed,
    and the difference of reconstruction from the recoverable truth (true + lost)."""
    truth = json.loads((generated.truth_dir / "truth.json").read_text())
    rebuilt = node_hours(pl.read_parquet(run.timeline_dir / DEVICE_SPANS_FILE), **window)
    levels = sorted(truth["device_hours"])
    frame = pl.DataFrame({"level": levels, "truth": [truth["device_hours"][lvl] for lvl in levels],
                          "rules": [truth["device_hours_recoverable"][lvl] - truth["device_hours"][lvl]
                                    for lvl in levels]})
    expected = pl.col("truth") + pl.col("rules")
    return (frame.join(rebuilt, on="level", how="left")
            .select("level", "truth", "rules", pl.col("node_hours").fill_null(0.0).alias("reconstructed"))
            .with_columns(pl.when(expected > 0).then((pl.col("reconstructed") - expected) / expected * 100)
                          .otherwise(None).alias("difference_pct")))


def node_hours(spans: pl.DataFrame, *, start: dt.datetime, end: dt.datetime, open_end: dt.datetime,
                by: str = "level") -> pl.DataFrame:
    """Node-hours per ``by`` inside [start, end), every span counted (whatever leaf it feeds)."""
    lo = pl.max_horizontal(pl.col("start"), pl.lit(start))
    hi = pl.min_horizontal(pl.col("end").fill_null(pl.lit(open_end)), pl.lit(end))
    hours = pl.max_horizontal((hi - lo).dt.total_seconds(fractional=True) / 3600, pl.lit(0.0))
    return spans.group_by(by).agg((hours * pl.col("nodes").fill_null(0.0)).sum().alias("node_hours"))
