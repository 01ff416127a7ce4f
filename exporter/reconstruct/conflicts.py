"""Conflict exclusion spans: duplicate Blazar host rows made explicit (docs/semantics.md, "Conflicts").

Two Blazar host rows of one hostname that overlap (a second row for a live host, or an enrolment
overlapping the next) are one host: the reservable level merges them, the earlier row keeping the
time. What the later row loses is not dropped silently: each piece becomes a span of level
``conflict`` (span_type ``conflict_exclusion``) naming the row excluded (``source_id``) and the row
that keeps the time (``counterpart_id``). These spans feed no exported series; the audit counts
their hours per host and checks they are exactly the ``duplicate_entity`` hours the merge recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from exporter.columns import LEVEL_CONFLICT, LEVEL_RESERVABLE, TIME
from exporter.engine.sweepline import order_free_sum
from exporter.errors import InvariantViolation

SOURCE = "blazar.computehosts"  # the rows whose duplicates are conflicts
PAIR_SCHEMA = {"hypervisor_hostname": pl.String, "source_id": pl.String, "counterpart_id": pl.String,
               "start": TIME, "end": TIME}
TOLERANCE = 1e-7  # relative, as the audit's other hour sums


def overlap_pieces(overlap: pl.DataFrame, kept: pl.DataFrame, *, by: Sequence[str], lost_end: pl.Expr,
                   snapshot_time: dt.datetime) -> pl.DataFrame:
    """by, source_id, counterpart_id, start, end: each piece of time a row lost to an earlier row
    of its key, against the kept piece of the row that holds it then.

    ``overlap``: the rows with ``_overlap`` hours (``intervals.duplicate_overlap``), which lose
    ``[start, lost_end)``; ``kept``: the pieces that survive the merge. The kept pieces are
    disjoint and cover every earlier row's time, so the pieces partition the lost time exactly.
    A piece still open at the snapshot (both rows open) has a null end.
    """
    snapshot = pl.lit(snapshot_time, dtype=TIME)
    lost = overlap.filter(pl.col("_overlap") > 0).select(
        *by, "_row", "source_id", "start", lost_end.alias("_lost_end"), pl.col("end").alias("_own_end"))
    holders = kept.select(*by, pl.col("_row").alias("_holder"), pl.col("source_id").alias("counterpart_id"),
                          pl.col("start").alias("_from"), pl.col("end").alias("_to"))
    pairs = lost.join(holders, on=list(by)).filter(pl.col("_row") != pl.col("_holder"))
    upper = pl.min_horizontal("_lost_end", pl.col("_to").fill_null(snapshot))
    pieces = pairs.with_columns(pl.max_horizontal("start", "_from").alias("start"), upper.alias("_upper"))
    still_open = pl.col("_own_end").is_null() & pl.col("_to").is_null() & (pl.col("_upper") == snapshot)
    return pieces.filter(pl.col("start") < pl.col("_upper")).select(
        *by, "source_id", "counterpart_id", "start",
        pl.when(still_open).then(None).otherwise(pl.col("_upper")).alias("end"))


def conflict_windows(pieces: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The pieces as adapter-like windows of level ``conflict`` (sorted, one row each)."""
    frame = pl.concat([p.select(list(PAIR_SCHEMA)).cast(PAIR_SCHEMA) for p in pieces], how="vertical") \
        if pieces else pl.DataFrame(schema=PAIR_SCHEMA)
    return frame.sort("hypervisor_hostname", "start", "source_id", "counterpart_id").with_columns(
        pl.lit(LEVEL_CONFLICT).alias("level"), pl.lit(SOURCE).alias("source_table"),
        pl.col("hypervisor_hostname").alias("entity_id"),
        pl.col("start").alias("original_start"), pl.col("end").alias("original_end"))


def conflict_audit(spans: pl.DataFrame, rejected: pl.DataFrame, clipped: pl.DataFrame) -> dict:
    """Conflict spans and hours (total, per host) and the duplicate_entity hours the reservable
    merge recorded for the same rows (rejected + clipped), which must be equal."""
    conflict = spans.filter(pl.col("level") == LEVEL_CONFLICT)
    duplicates = ((pl.col("level") == LEVEL_RESERVABLE) & (pl.col("source_table") == SOURCE))
    rejected_hours = rejected.filter(duplicates & (pl.col("rejection_reason") == "duplicate_entity")).select(
        order_free_sum(pl.col("hours"))).item() or 0.0
    clipped_hours = clipped.filter(duplicates & (pl.col("reason") == "duplicate_entity")).select(
        order_free_sum(pl.col("hours"))).item() if clipped.height else 0.0
    per_host = conflict.group_by("hypervisor_hostname").agg(order_free_sum(pl.col("hours"))).sort(
        "hypervisor_hostname")
    return {"spans": conflict.height, "hours": float(conflict.select(order_free_sum(pl.col("hours"))).item() or 0.0),
            "hours_by_host": dict(per_host.rows()),
            "duplicate_entity_hours": float(rejected_hours) + float(clipped_hours or 0.0)}


def check_conflicts(audit: dict) -> None:
    """Raise InvariantViolation unless every duplicate hour of a Blazar host row is a conflict span's."""
    expected, got = audit["duplicate_entity_hours"], audit["hours"]
    if abs(expected - got) > TOLERANCE * max(1.0, abs(expected), abs(got)):
        raise InvariantViolation(f"conflict spans hold {got:.6f} h but the Blazar host merge set aside "
                                 f"{expected:.6f} h as duplicate_entity", details=[audit])
