"""Accounting of every input row and span-hour, and the two invariants checked on every run.

1. Rows: per (level, source table), input rows = rows used (>= 1 span) + rows rejected, and no
   row is both.
2. Hours: per (level, source table), input span-hours = counted + clipped + rejected hours; and
   the timeline's Σ value × step per level equals the counted span-hours inside the window
   (exporter.reconstruct.audit_timeline).

Hours of a window [start, end) read a null end as the snapshot time and count 0 when negative.
Every float sum is order-free (exporter.engine.sweepline.order_free_sum): polars' grouped sums may add
partial sums in a varying order, and audit.json must be byte-identical between runs.
A violation raises :class:`InvariantViolation` naming every failing entry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import polars as pl

from exporter.columns import LEVEL_TOTAL, LEVELS, REJECT_REASONS
from exporter.engine.intervals import hours_between
from exporter.engine.sweepline import order_free_sum
from exporter.errors import InvariantViolation
from exporter.reconstruct.books import KEYS, SpanBooks
from exporter.reconstruct.audit_timeline import check_timeline_hours

SPAN_COLUMNS = ("site", "level", "source_table", "source_id", "start", "end")  # what span_audit reads of a span
# Relative tolerance for comparing float sums of hours (sums of ~10^6 terms).
TOLERANCE = 1e-7


def source_accounting(inputs: pl.DataFrame, spans: pl.DataFrame, rejected: pl.DataFrame, clipped: pl.DataFrame,
                      *, snapshot_time: dt.datetime) -> pl.DataFrame:
    """Per (level, source_table): rows in/used/rejected/both and hours in/counted/clipped/rejected."""
    # A row an exclude rule cuts only partly is used (its other pieces) and has rejected pieces:
    # it counts as used, its pieces' hours as rejected.
    ids = [*KEYS, "source_id"]
    used = spans.group_by(KEYS).agg(
        order_free_sum(hours_between("start", "end", snapshot_time=snapshot_time)).alias("hours_counted"),
        pl.col("source_id").n_unique().alias("rows_used"))
    # Only a rejected id can be used and rejected both: the spans of those ids (few) stand in for
    # every used (key, id), whose unique() and joins row-encoded 600k text triples on 500 x 10.
    used_ids = (spans.filter(pl.col("source_id").is_in(rejected.get_column("source_id").drop_nulls().implode()))
                .select(ids).unique())
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


def check_reject_reasons(rejected: pl.DataFrame, clipped: pl.DataFrame) -> None:
    """Raise InvariantViolation when a rejected row or clipped hours carry a reason outside
    REJECT_REASONS (a bug: every reason must be documented and counted under a known name)."""
    for books, column in ((rejected, "rejection_reason"), (clipped, "reason")):
        unknown = sorted(set(books.get_column(column).unique().to_list()) - set(REJECT_REASONS))
        if unknown:
            raise InvariantViolation(f"{column} {', '.join(map(str, unknown))} not in REJECT_REASONS "
                                     f"(exporter/columns.py); add each with its meaning there and in "
                                     f"docs/semantics.md", details=unknown)


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


def span_audit(books: SpanBooks, spans: pl.DataFrame, rejected: pl.DataFrame, *,
               tables: Mapping[str, pl.LazyFrame], warnings: list[str]) -> dict:
    """The audit dict: per-source accounting, rejections and clips by reason and year, warnings.
    ``spans``: the counted spans' SPAN_COLUMNS (more columns are not read)."""
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
