"""Accounting of every input row and span-hour, and the two invariants checked on every run.

1. Rows: per (level, source table), input rows = rows used (>= 1 span) + rows rejected, and no
   row is both.
2. Hours: per (level, source table), input span-hours = counted + clipped + rejected hours; and
   the timeline's Σ value × step per level equals the counted span-hours inside the window.

Hours of a window [start, end) read a null end as the snapshot time and count 0 when negative.
Every float sum is order-free (exporter.engine.sweepline.order_free_sum): polars' grouped sums may add
partial sums in a varying order, and audit.json must be byte-identical between runs.
A violation raises :class:`InvariantViolation` naming every failing entry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import polars as pl

from exporter.columns import LEVEL_TOTAL, LEVELS, REJECT_REASONS
from exporter.engine.intervals import hours_between, overlap_seconds
from exporter.engine.resample import grid_end
from exporter.engine.sweepline import order_free_sum
from exporter.errors import InvariantViolation
from exporter.reconstruct import pools
from exporter.reconstruct.books import KEYS, SpanBooks
from exporter.reconstruct.leaves import RESOURCES, SERIES, series_name, series_weights
from exporter.reconstruct.timeline import (
    GROUP, SpanInput, series_spans, series_totals, unexported_hours,
)

# Relative tolerance for comparing float sums of hours (sums of ~10^6 terms).
TOLERANCE = 1e-7


def source_accounting(inputs: pl.DataFrame, spans: pl.DataFrame, rejected: pl.DataFrame, clipped: pl.DataFrame,
                      *, snapshot_time: dt.datetime) -> pl.DataFrame:
    """Per (level, source_table): rows in/used/rejected/both and hours in/counted/clipped/rejected."""
    used = spans.group_by(KEYS).agg(
        pl.col("source_id").n_unique().alias("rows_used"),
        order_free_sum(hours_between("start", "end", snapshot_time=snapshot_time)).alias("hours_counted"))
    # A row an exclude rule cuts only partly is used (its other pieces) and has rejected pieces:
    # it counts as used, its pieces' hours as rejected.
    ids = [*KEYS, "source_id"]
    used_ids = spans.select(ids).unique()
    partial = (pl.col("rejection_reason") == "manual_rule")
    whole = pl.concat([rejected.filter(~partial), rejected.filter(partial).join(used_ids, on=ids, how="anti")])
    dropped = rejected.group_by(KEYS).agg(order_free_sum(pl.col("hours")).alias("hours_rejected")).join(
        whole.group_by(KEYS).agg(pl.col("source_id").n_unique().alias("rows_rejected")), on=KEYS, how="full",
        coalesce=True)
    both = (used_ids.join(rejected.filter(~partial).select(ids).unique(), on=ids, how="inner")
            .group_by(KEYS).agg(pl.len().alias("rows_both")))
    cut = clipped.group_by(KEYS).agg(order_free_sum(pl.col("hours")).alias("hours_clipped"))
    table = inputs.group_by(KEYS).agg(pl.col("rows_in").sum(), order_free_sum(pl.col("hours_in")))
    for part in (used, dropped, both, cut):
        table = table.join(part, on=KEYS, how="full", coalesce=True)
    return table.fill_null(0).sort(KEYS)


def check_sources(sources: list[dict]) -> None:
    """Raise InvariantViolation unless rows and hours balance for every (level, source_table)."""
    failures = []
    for entry in sources:
        name = f"{entry['level']}/{entry['source_table']}"
        rows = entry["rows_used"] + entry["rows_rejected"]
        if entry["rows_in"] != rows or entry["rows_both"]:
            failures.append(f"{name}: {entry['rows_in']} rows in != {entry['rows_used']} used + "
                            f"{entry['rows_rejected']} rejected ({entry['rows_both']} both)")
        out = entry["hours_counted"] + entry["hours_clipped"] + entry["hours_rejected"]
        if not _close(entry["hours_in"], out):
            failures.append(f"{name}: {entry['hours_in']:.6f} span-hours in != {entry['hours_counted']:.6f} counted + "
                            f"{entry['hours_clipped']:.6f} clipped + {entry['hours_rejected']:.6f} rejected")
    if failures:
        raise InvariantViolation("accounting does not balance: " + "; ".join(failures), details=failures)


def check_timeline_hours(conservation: list[dict]) -> None:
    """Raise InvariantViolation unless the timeline's integral equals the span-hours per
    (node_type, level-series, resource) (rule and tolerance: check_hours_conserved)."""
    frame = pl.DataFrame(conservation, infer_schema_length=None)
    if frame.height:
        check_hours_conserved(frame.with_columns(difference=pl.col("timeline_hours") - pl.col("span_hours")))


def check_reject_reasons(rejected: pl.DataFrame) -> None:
    """Raise InvariantViolation when a rejected row carries a reason outside REJECT_REASONS (a bug:
    every reason must be documented and counted under a known name)."""
    unknown = sorted(set(rejected.get_column("rejection_reason").unique().to_list()) - set(REJECT_REASONS))
    if unknown:
        raise InvariantViolation(f"rejection reason(s) {', '.join(map(str, unknown))} not in REJECT_REASONS "
                                 f"(exporter/columns.py); add each with its meaning there and in docs/semantics.md",
                                 details=unknown)


def check_invariants(audit: dict) -> None:
    """Both invariants on an audit dict (``sources`` and, when present, ``timeline.levels``)."""
    check_sources(audit["sources"])
    if "timeline" in audit:
        check_timeline_hours(audit["timeline"]["conservation"])


def _close(expected: float, actual: float) -> bool:
    return abs(expected - actual) <= TOLERANCE * max(1.0, abs(expected), abs(actual))


def audit_json(audit: dict) -> str:
    """Deterministic JSON text (sorted keys, fixed indentation)."""
    return json.dumps(audit, sort_keys=True, indent=2, default=str) + "\n"


def timeline_accounting(spans: pl.DataFrame, timeline: pl.DataFrame, *, start: dt.datetime, end: dt.datetime,
                        step: dt.timedelta, snapshot_time: dt.datetime) -> dict:
    """The timeline part of the audit: window, size, negative leaves and, per (node_type,
    level-series, resource), counted span-hours in the window vs the timeline's integral
    (hours_conservation: leaves recombined by the inverse leaf table)."""
    conservation = hours_conservation(spans, timeline, start=start, end=end, step=step, open_end=snapshot_time)
    return {
        "start": start.isoformat(), "end": end.isoformat(), "step_seconds": int(step.total_seconds()),
        "rows": timeline.height, "negative_leaves": negative_leaves(timeline).height,
        # occupied/stopped node-hours inside maintenance leases: in the maintenance leaf, not active/idle
        "node_hours_inside_maintenance": unexported_hours(spans, start=start, end=end, open_end=snapshot_time),
        "pools": pools.pool_node_hours(timeline, step=step),
        "conservation": conservation.drop("difference").to_dicts(),
    }



def span_audit(books: SpanBooks, spans: pl.DataFrame, rejected: pl.DataFrame, *,
               tables: Mapping[str, pl.LazyFrame], warnings: list[str]) -> dict:
    """The audit dict: per-source accounting, rejections and clips by reason and year, warnings."""
    snapshot = books.snapshot_time
    sources = source_accounting(books.all_inputs(), spans, rejected, books.all_clipped(),
                                         snapshot_time=snapshot)
    hours = hours_between("start", "end", snapshot_time=snapshot)
    by_reason = (rejected.with_columns(pl.col("start").dt.year().alias("year"))
                 .group_by("level", "source_table", "rejection_reason", "year")
                 .agg(pl.len().alias("rows"), order_free_sum(pl.col("hours")))
                 .rename({"rejection_reason": "reason"}).sort("level", "source_table", "reason", "year", nulls_last=True))
    clipped = (books.all_clipped().group_by("level", "source_table", "reason", "year").agg(order_free_sum(pl.col("hours")))
               .sort("level", "source_table", "reason", "year", nulls_last=True))
    counted = (spans.group_by("level", "source_table", pl.col("start").dt.year().alias("year"))
               .agg(order_free_sum(hours).alias("hours")).sort("level", "source_table", "year"))
    blazar_only = spans.filter((pl.col("level") == LEVEL_TOTAL) & (pl.col("source_table") == "blazar.computehosts"))
    return {
        "site": spans["site"][0] if spans.height else books.site,
        "snapshot_time": snapshot.isoformat(),
        "levels": list(LEVELS),
        "sources": sources.to_dicts(),
        "rejected": by_reason.to_dicts(),
        "clipped": clipped.to_dicts(),
        "counted": counted.to_dicts(),
        "blazar_only_total_hours": float(blazar_only.select(order_free_sum(hours)).item() or 0.0),
        "table_rows": {name: int(frame.select(pl.len()).collect().item()) for name, frame in sorted(tables.items())},
        "warnings": warnings,
    }


def _series_as_levels(
    frame: pl.DataFrame, value: str, *, index: Sequence[str] = tuple(GROUP)
) -> pl.DataFrame:
    """``index, series, resource, <value>`` -> ``index, level, booking, resource, <value>``."""
    level_of = {series_name(*s): s for s in SERIES}
    return (
        frame.with_columns(
            pl.col("series").replace_strict({k: v[0] for k, v in level_of.items()}).alias("level"),
            pl.col("series")
            .replace_strict({k: v[1] for k, v in level_of.items()}, return_dtype=pl.String)
            .alias("booking"),
        )
        .select(*index, "level", "booking", "resource", value)
        .sort(*index, "level", "booking", "resource", nulls_last=True)
    )


def hours_by_level(
    spans: SpanInput, *, start: datetime, end: datetime, open_end: datetime
) -> pl.DataFrame:
    """Counted span-hours in the window [start, end), per level-series, in base units.

    Output: ``site, node_type, level, booking, resource, hours`` (Σ resource × hours of each
    span clipped to the window; null end closed at ``open_end``), for every (site, node_type) in
    the spans × every level-series × resource.
    """
    seconds = overlap_seconds(start, end, open_end=open_end)
    totals = series_totals(series_spans(spans), seconds / 3600.0)
    long = totals.unpivot(
        index=[*GROUP, "series"], on=list(RESOURCES), variable_name="resource", value_name="hours"
    )
    return _series_as_levels(long, "hours")


def timeline_hours_by_level(timeline: pl.DataFrame, *, step: timedelta) -> pl.DataFrame:
    """The timeline's integral (Σ value × step, in hours) per level-series, from its leaves.

    Level-series are recovered from the leaves by the inverse of the leaf table, so this checks
    what the timeline says about each level independently of how it was built. Output columns
    as :func:`hours_by_level`.
    """
    inverse = pl.DataFrame(
        [
            {"series": series_name(*s), "pool": pool, "state": state, "weight": float(w)}
            for s, weights in series_weights().items()
            for (pool, state), w in weights.items()
        ]
    )
    step_hours = step / timedelta(hours=1)
    # Order-free sums keep audit.json byte-identical between runs of the parallel engine.
    leaf_sums = (
        timeline.lazy()
        .group_by(*GROUP, "pool", "state", "resource")
        .agg(order_free_sum(pl.col("value")))
        .collect(engine="streaming")
        # as text: spans label them so, and a timeline read from an older file has text labels
        .with_columns(pl.col(*GROUP, "pool", "state", "resource").cast(pl.String))
    )
    series_hours = (
        leaf_sums.join(inverse, on=["pool", "state"])
        .group_by(*GROUP, "series", "resource")
        .agg(order_free_sum(pl.col("value") * pl.col("weight")).mul(step_hours).alias("hours"))
    )
    return _series_as_levels(series_hours, "hours")


def hours_conservation(
    spans: SpanInput,
    timeline: pl.DataFrame,
    *,
    start: datetime,
    end: datetime,
    step: timedelta,
    open_end: datetime,
) -> pl.DataFrame:
    """Span-hours vs timeline integral per level-series over the grid's window.

    The window is [start, grid_end) (the last cell may reach past ``end``). Output:
    ``site, node_type, level, booking, resource, span_hours, timeline_hours, difference``.
    """
    window_end = grid_end(start=start, end=end, step=step)
    keys = [*GROUP, "level", "booking", "resource"]
    counted = hours_by_level(spans, start=start, end=window_end, open_end=open_end)
    integral = timeline_hours_by_level(timeline, step=step)
    return (
        counted.rename({"hours": "span_hours"})
        .join(integral.rename({"hours": "timeline_hours"}), on=keys, how="full",
              coalesce=True, nulls_equal=True)
        .with_columns(pl.col("span_hours", "timeline_hours").fill_null(0.0))
        .with_columns(difference=pl.col("timeline_hours") - pl.col("span_hours"))
        .sort(keys, nulls_last=True)
    )


def check_hours_conserved(
    conservation: pl.DataFrame, *, rel_tol: float = 1e-9, abs_tol: float = 1e-6
) -> None:
    """Raise InvariantViolation if any timeline integral differs from its span-hours.

    Allowed difference: ``abs_tol`` + ``rel_tol`` × the largest hours of any level-series of
    the same (site, node_type, resource). ``conservation`` is :func:`hours_conservation`'s
    output; the error's ``details`` lists the bad rows.
    """
    # Leaves are differences of level-series, so round-off scales with the largest series of
    # the same (site, node_type, resource), not with the series being checked.
    scale = (
        pl.max_horizontal(pl.col("span_hours").abs(), pl.col("timeline_hours").abs())
        .max()
        .over("site", "node_type", "resource")
    )
    bad = conservation.filter(pl.col("difference").abs() > abs_tol + rel_tol * scale)
    if bad.height:
        first = bad.row(0, named=True)
        raise InvariantViolation(
            f"hours not conserved for {bad.height} level/resource series, e.g. "
            f"{first['site']}/{first['node_type']}/{first['level']}/{first['booking']}/"
            f"{first['resource']}: spans {first['span_hours']:.6g} h vs timeline "
            f"{first['timeline_hours']:.6g} h",
            details=bad.to_dicts(),
        )


def negative_leaves(timeline: pl.DataFrame, *, tolerance: float = 1e-9) -> pl.DataFrame:
    """Timeline rows whose leaf is negative (a data anomaly), ignoring float round-off.

    A value counts as negative below −tolerance × max(1, peak), peak being the largest |value|
    of the same (site, node_type, resource). Output: the offending timeline rows.
    """
    group = [*GROUP, "resource"]
    negative = timeline.filter(pl.col("value") < 0)
    if negative.height == 0:
        return negative
    peaks = (
        timeline.lazy()
        .join(negative.lazy().select(group).unique(), on=group, how="semi", nulls_equal=True)
        .group_by(group)
        .agg(pl.col("value").abs().max().alias("_peak"))
        .collect(engine="streaming")
    )
    return (
        negative.join(peaks, on=group, how="left", nulls_equal=True)
        .filter(pl.col("value") < -tolerance * pl.max_horizontal(pl.col("_peak"), 1.0))
        .drop("_peak")
    )
