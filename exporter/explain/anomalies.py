"""Anomalies behind a number, grouped by kind (the design's explain procedure).

Kinds: ``open_ended`` (a contributing span still open at the snapshot: its end is the snapshot
time, not a recorded event), ``conflict`` (``conflict_exclusion`` spans in the window — a
duplicate Blazar host row's time, excluded, naming both rows; they add nothing to the value —
and rows another source or a duplicate overrode in the window), ``missing_inventory`` (the span's quantity of the resource is
unknown and counts 0, or its node type is unknown), ``negative_leaf`` (a selected leaf below
zero: its levels contradict each other), ``manual_rule`` (an operator's rule added or changed
the span).
"""

from __future__ import annotations

import math

import polars as pl

from exporter.adapters.common import ROW_ID_ORDER, id_order
from exporter.explain.formula import Formula
from exporter.columns import UNKNOWN_NODE_TYPE
from exporter.reconstruct.audit_timeline import NEGATIVE_TOLERANCE  # the audit's own threshold

CONFLICT_SPAN_TYPES = ("conflict_exclusion",)
CONFLICT_REJECTIONS = ("duplicate_entity", "overridden")


def _span_items(rows: pl.DataFrame, limit: int | None) -> dict:
    shown = rows.head(limit) if limit is not None else rows
    return {"count": rows.height,
            "contribution": math.fsum(rows.get_column("contribution").to_list()),
            "items": shown.select("source_table", "source_id", "level", pl.col("hypervisor_hostname").alias("hostname"),
                                  "contribution").to_dicts()}


def anomalies(rows: pl.DataFrame, leaves: pl.DataFrame, selected: pl.DataFrame, rejected: pl.DataFrame | None,
              *, conflicts: pl.DataFrame, formula: Formula, limit: int | None) -> dict:
    """``rows``: contributions (with inventory_known); ``leaves``: every leaf of the selected node
    types in the window (one resource); ``selected``: the selected ones; ``conflicts``: the
    conflict spans covering part of the window (with ``fraction``)."""
    unknown = ~pl.col("inventory_known") | pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE).eq(UNKNOWN_NODE_TYPE)
    return {
        "open_ended": _span_items(rows.filter(pl.col("end").is_null()), limit),
        "conflict": {**_conflict_items(conflicts, limit), "overridden_rows": _conflict_rows(rejected, formula, limit)},
        "missing_inventory": _span_items(rows.filter(unknown), limit),
        "negative_leaf": _negative(leaves, selected, limit),
        "manual_rule": _span_items(rows.filter(pl.col("rule_id").is_not_null()), limit),
    }


def conflict_spans(spans: pl.DataFrame) -> pl.DataFrame:
    """The spans of a conflict kind (none in outputs written before span_type existed)."""
    if "span_type" not in spans.columns:
        return spans.clear()
    return spans.filter(pl.col("span_type").is_in(CONFLICT_SPAN_TYPES))


def _conflict_items(conflicts: pl.DataFrame, limit: int | None) -> dict:
    """Count and items of conflict spans: both rows, the host, the window; they contribute 0."""
    ordered = conflicts.sort("hypervisor_hostname", "start", *id_order("source_id"), nulls_last=True)
    shown = ordered.head(limit) if limit is not None else ordered
    counterpart = pl.col("counterpart_id") if "counterpart_id" in conflicts.columns else pl.lit(None, pl.String)
    return {"count": conflicts.height, "contribution": 0.0,
            "items": shown.select("source_table", "source_id", counterpart.alias("counterpart_id"), "span_type",
                                  pl.col("hypervisor_hostname").alias("hostname"), pl.col("start").cast(pl.String),
                                  pl.col("end").cast(pl.String), "fraction").to_dicts()}


def _conflict_rows(rejected: pl.DataFrame | None, formula: Formula, limit: int | None) -> dict:
    """Rows of the formula's levels set aside in the window for a duplicate or a higher-priority source.

    Rejected rows carry no host or node type, so these are the site's, not only the selection's."""
    if rejected is None:
        return {"count": 0, "items": [], "scope": "not available"}
    levels = sorted({name.split(".")[0] for name in formula.coefficients})
    picked = rejected.filter(pl.col("rejection_reason").is_in(CONFLICT_REJECTIONS) & pl.col("level").is_in(levels))
    picked = picked.sort(*ROW_ID_ORDER, "level", nulls_last=True)
    shown = picked.head(limit) if limit is not None else picked
    return {"count": picked.height, "scope": "site (rejected rows carry no node type)",
            "items": shown.select("source_table", "source_id", "level", "rejection_reason",
                                  "rejection_detail").to_dicts()}


def _negative(leaves: pl.DataFrame, selected: pl.DataFrame, limit: int | None) -> dict:
    scale = leaves.group_by("node_type").agg(pl.col("value").abs().sum().alias("_scale"))
    negative = (selected.join(scale, on="node_type", how="left")
                .filter(pl.col("value") < -NEGATIVE_TOLERANCE * pl.max_horizontal(pl.col("_scale"), 1.0))
                .sort("node_type", "pool", "state"))
    shown = negative.head(limit) if limit is not None else negative
    return {"count": negative.height, "items": shown.select("node_type", "pool", "state", "value").to_dicts()}
