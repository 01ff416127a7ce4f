"""Accounting of every input row and span-hour, and the two invariants checked on every run.

1. Rows: per (level, source table), input rows = rows used (>= 1 span) + rows rejected, and no
   row is both.
2. Hours: per (level, source table), input span-hours = counted + clipped + rejected hours; and
   the timeline's Σ value × step per level equals the counted span-hours inside the window.

Hours of a window [start, end) read a null end as the snapshot time and count 0 when negative.
Every float sum is order-free (exporter.ledger.order_free_sum): polars' grouped sums may add
partial sums in a varying order, and audit.json must be byte-identical between runs.
A violation raises :class:`InvariantViolation` naming every failing entry.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from exporter.adapters.common import hours_between
from exporter.errors import InvariantViolation
from exporter.ledger import order_free_sum
from exporter.timeline import check_hours_conserved, hours_conservation, negative_leaves, unexported_hours

# Relative tolerance for comparing float sums of hours (sums of ~10^6 terms).
TOLERANCE = 1e-7
KEYS = ["level", "source_table"]
# Below this a "trim" is float round-off of two sums, not a cut (real cuts are >= 1 second).
FLOAT_NOISE_HOURS = 1e-6


def input_totals(windows: pl.DataFrame, *, snapshot_time: dt.datetime) -> pl.DataFrame:
    """level, source_table, rows_in, hours_in of an adapter's raw windows (kept and rejected)."""
    return windows.group_by(KEYS).agg(
        pl.len().alias("rows_in"), order_free_sum(hours_between("start", "end", snapshot_time=snapshot_time)).alias("hours_in"))


def trimmed_hours(before: pl.DataFrame, after: pl.DataFrame, *, reason: str, snapshot_time: dt.datetime) -> pl.DataFrame:
    """level, source_table, reason, year, hours: span-hours in ``before`` but not in ``after``.

    Both frames carry level, source_table, original_start, start, end; ``after`` holds the
    pieces that survive a trimming stage, minus rows rejected whole (the caller drops those
    from ``before`` too, or accounts them as rejected). Year = year of the row's raw start.
    """
    keys = ["level", "source_table", "year"]
    hours = hours_between("start", "end", snapshot_time=snapshot_time)
    year = pl.col("original_start").dt.year().alias("year")
    was = before.group_by("level", "source_table", year).agg(order_free_sum(hours).alias("was"))
    now = after.group_by("level", "source_table", year).agg(order_free_sum(hours).alias("now"))
    return (
        was.join(now, on=keys, how="inner")
        .with_columns((pl.col("was") - pl.col("now")).alias("hours"), pl.lit(reason).alias("reason"))
        .filter(pl.col("hours") > FLOAT_NOISE_HOURS)
        .select("level", "source_table", "reason", "year", "hours")
    )


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


def check_timeline(conservation: list[dict]) -> None:
    """Raise InvariantViolation unless the timeline's integral equals the span-hours per
    (node_type, level-series, resource) (rule and tolerance: exporter.timeline.check_hours_conserved)."""
    frame = pl.DataFrame(conservation, infer_schema_length=None)
    if frame.height:
        check_hours_conserved(frame.with_columns(difference=pl.col("timeline_hours") - pl.col("span_hours")))


def check_invariants(audit: dict) -> None:
    """Both invariants on an audit dict (``sources`` and, when present, ``timeline.levels``)."""
    check_sources(audit["sources"])
    if "timeline" in audit:
        check_timeline(audit["timeline"]["conservation"])


def _close(expected: float, actual: float) -> bool:
    return abs(expected - actual) <= TOLERANCE * max(1.0, abs(expected), abs(actual))


def audit_json(audit: dict) -> str:
    """Deterministic JSON text (sorted keys, fixed indentation)."""
    return json.dumps(audit, sort_keys=True, indent=2, default=str) + "\n"


def summary_text(audit: dict) -> str:
    """A short human summary: rows and hours per source, rejections per reason, checks."""
    lines = [f"site {audit['site']}: snapshot {audit['snapshot_time']}"]
    lines.append(f"{'level/source':<48} {'rows in':>9} {'used':>9} {'rejected':>9} "
                 f"{'hours in':>14} {'counted':>14} {'clipped':>12} {'rejected':>12}")
    for e in audit["sources"]:
        lines.append(f"{e['level'] + '/' + e['source_table']:<48} {e['rows_in']:>9} {e['rows_used']:>9} "
                     f"{e['rows_rejected']:>9} {e['hours_in']:>14.1f} {e['hours_counted']:>14.1f} "
                     f"{e['hours_clipped']:>12.1f} {e['hours_rejected']:>12.1f}")
    reasons: dict[str, int] = {}
    for e in audit["rejected"]:
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + e["rows"]
    if reasons:
        lines.append("rejected rows by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    lines.append(f"total host-hours evidenced only by Blazar: {audit['blazar_only_total_hours']:.1f}")
    if audit.get("ondemand_hours_outside_total"):
        lines.append(f"on-demand instance-hours on hosts without total evidence: "
                     f"{audit['ondemand_hours_outside_total']:.1f} (shown as negative on-demand available)")
    if "timeline" in audit:
        tl = audit["timeline"]
        lines.append(f"timeline {tl['start']} .. {tl['end']} step {tl['step_seconds']}s: {tl['rows']} rows, "
                     f"{tl['negative_leaves']} negative leaf values")
        if tl.get("node_hours_inside_maintenance"):
            lines.append(f"instance node-hours inside maintenance leases (counted as maintenance, not active): "
                         f"{tl['node_hours_inside_maintenance']:.1f}")
    for warning in audit["warnings"]:
        lines.append(f"warning: {warning}")
    lines.append("invariants: rows and hours balance for every source; timeline conserves span-hours")
    return "\n".join(lines)


def timeline_accounting(spans: pl.DataFrame, timeline: pl.DataFrame, *, start: dt.datetime, end: dt.datetime,
                        step: dt.timedelta, snapshot_time: dt.datetime) -> dict:
    """The timeline part of the audit: window, size, negative leaves and, per (node_type,
    level-series, resource), counted span-hours in the window vs the timeline's integral
    (exporter.timeline.hours_conservation: leaves recombined by the inverse leaf table)."""
    conservation = hours_conservation(spans, timeline, start=start, end=end, step=step, open_end=snapshot_time)
    return {
        "start": start.isoformat(), "end": end.isoformat(), "step_seconds": int(step.total_seconds()),
        "rows": timeline.height, "negative_leaves": negative_leaves(timeline).height,
        # occupied/stopped node-hours inside maintenance leases: in the maintenance leaf, not active/idle
        "node_hours_inside_maintenance": unexported_hours(spans, start=start, end=end, open_end=snapshot_time),
        "conservation": conservation.drop("difference").to_dicts(),
    }
