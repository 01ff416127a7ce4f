"""The explain answer: value, formula, contributing spans, ledger deltas and anomalies, as one dict.

Shared by the history (a reconstruct output, ``exporter.explain.history``) and the present (the
spans the live exporter kept, ``exporter.explain.present``): both hand over the spans that may
overlap the window and the exported leaf values there; everything else is computed here once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from exporter.explain.anomalies import anomalies, conflict_spans
from exporter.explain.cell import Window, contributions, covered_fraction, ledger_deltas
from exporter.explain.formula import leaf_terms, selection_formula
from exporter.columns import LEVEL_OCCUPIED, LEVEL_STOPPED, SPAN_SCHEMA, TIMELINE_RESOURCES, UNKNOWN_NODE_TYPE
from exporter.metrics import DEVICES as DEVICES_FAMILY

# What each span is and how sure (exporter.reconstruct.span_kinds); null in outputs written before them.
KIND_COLUMNS = ("span_type", "evidence", "confidence")
DEFAULT_RESOURCE = "nodes"


@dataclass(frozen=True)
class Selection:
    """Which series: None means every value of that label (summed); resource is one metric family."""

    site: str | None = None
    node_types: tuple[str, ...] | None = None
    pools: tuple[str, ...] | None = None
    states: tuple[str, ...] | None = None
    resource: str = DEFAULT_RESOURCE

    def as_json(self) -> dict:
        return {"site": self.site, "node_type": _listed(self.node_types), "pool": _listed(self.pools),
                "state": _listed(self.states), "resource": self.resource}

    def span_filter(self) -> pl.Expr:
        """Spans of the selected site and node types (a null node type is ``unknown``, as exported)."""
        keep = pl.lit(True)
        if self.site is not None:
            keep &= pl.col("site") == self.site
        if self.node_types is not None:
            keep &= pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE).is_in(list(self.node_types))
        return keep

    def leaf_filter(self) -> pl.Expr:
        """Exported leaves (columns node_type, pool, state, resource as text) of the selection."""
        keep = pl.col("resource") == self.resource
        for column, values in (("node_type", self.node_types), ("pool", self.pools), ("state", self.states)):
            if values is not None:
                keep &= pl.col(column).is_in(list(values))
        return keep


# The CHI@Edge devices family (openstack_usage_devices) is explained like a resource: its spans are
# device spans counted in whole devices (resource ``nodes``), its node type is the machine_name.
DEVICES = "devices"


def family_of(selection: Selection) -> tuple[Selection, dict]:
    """The selection as the spans and leaves see it, and what the answer adds to say which family
    it explains: ``devices`` -> ``nodes`` of the device spans, ``{"family": "openstack_usage_devices"}``."""
    if selection.resource != DEVICES:
        return selection, {}
    return replace(selection, resource=DEFAULT_RESOURCE), {"family": DEVICES_FAMILY.name}


def _listed(values: Sequence[str] | None) -> list[str] | str:
    return "all" if values is None else list(values)


def span_columns(present: Sequence[str]) -> list[str]:
    """The columns an answer reads from a span frame with ``present`` columns."""
    return [c for c in SPAN_SCHEMA if c in present]


def answer(spans: pl.DataFrame, leaves: pl.DataFrame, *, selection: Selection, window: Window,
           rejected: pl.DataFrame | None = None, limit: int | None = None, offset: int = 0) -> dict:
    """The explain dict for ``selection`` over ``window``.

    ``spans``: spans that may overlap the window (extra spans are harmless). ``leaves``: the
    exported leaf values over the window, columns node_type, pool, state, resource, value (text
    labels), for at least the selected node types. ``rejected``: rejected rows overlapping it.
    """
    formula = selection_formula(selection.pools, selection.states)
    keep = [c for c in span_columns(spans.columns) if c not in SPAN_RESOURCE_COLUMNS] + ["inventory_known"]
    column, _ = TIMELINE_RESOURCES[selection.resource]
    spans = spans.filter(selection.span_filter()).with_columns(inventory_known=pl.col(column).is_not_null())
    conflicts = conflict_spans(spans).with_columns(fraction=covered_fraction(window)).filter(pl.col("fraction") > 0)
    rows = contributions(spans, formula, resource=selection.resource, window=window, keep=keep)
    rows = rows.sort(pl.col("contribution").abs(), "source_table", "source_id", "level", "start",
                     descending=[True, False, False, False, False], nulls_last=True)
    selected = leaves.filter(selection.leaf_filter())
    value = math.fsum(selected.get_column("value").to_list())
    total = math.fsum(rows.get_column("contribution").to_list())
    deltas = ledger_deltas(rows, window, keep=["source_table", "source_id", "level", "start", "end"])
    return {
        "selection": selection.as_json(),
        "value": value,
        "formula": _formula_json(formula, rows),
        "contributions_sum": total,
        "difference": total - value,
        "spans_total": rows.height,
        "offset": offset,
        "limit": limit,
        "spans": [_span_json(row) for row in _page(rows, limit, offset).iter_rows(named=True)],
        "ledger": {"total": deltas.height,
                   "deltas": [_delta_json(row) for row in _page(deltas, limit, offset).iter_rows(named=True)]},
        "anomalies": anomalies(rows, leaves.filter(pl.col("resource") == selection.resource), selected,
                               rejected, conflicts=conflicts, formula=formula, limit=limit),
    }


SPAN_RESOURCE_COLUMNS = ("nodes", "vcpus", "memory_mb", "disk_gb", "gpus")


def _page(frame: pl.DataFrame, limit: int | None, offset: int) -> pl.DataFrame:
    return frame.slice(offset, limit)


def _formula_json(formula, rows: pl.DataFrame) -> dict:
    sums = {name: math.fsum(group.get_column("quantity") * group.get_column("fraction"))
            for (name,), group in rows.group_by("series")}
    return {
        "text": formula.text(),
        "leaves": [leaf_terms(pool, state) for pool, state in formula.leaves],
        "terms": [{"series": name, "sign": sign, "value": sums.get(name, 0.0)}
                  for name, sign in formula.coefficients.items()],
    }


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _span_json(row: dict) -> dict:
    level = row["level"]
    out = {
        "source_table": row["source_table"], "source_id": row["source_id"], "level": level,
        "booking": row.get("booking"), "series": row["series"],
        **{c: row.get(c) for c in KIND_COLUMNS},
        "hostname": row.get("hypervisor_hostname"), "node_type": row.get("node_type") or UNKNOWN_NODE_TYPE,
        "pool": row.get("pool"), "project_id": row.get("project_id"), "lease_id": row.get("lease_id"),
        "reservation_id": row.get("reservation_id"),
        "instance_id": row.get("entity_id") if level in (LEVEL_OCCUPIED, LEVEL_STOPPED) else None,
        "entity_id": row.get("entity_id"),
        "start": _iso(row["start"]), "end": _iso(row["end"]),
        "original_start": _iso(row.get("original_start")), "original_end": _iso(row.get("original_end")),
        "hierarchy_status": row.get("hierarchy_status"), "source": row.get("source"), "rule_id": row.get("rule_id"),
        "quantity": row["quantity"], "fraction": row["fraction"], "sign": row["sign"],
        "contribution": row["contribution"],
    }
    return out


def _delta_json(row: dict) -> dict:
    return {"time": _iso(row["time"]), "series": row["series"], "delta": row["delta"], "sign": row["sign"],
            "effect": row["effect"], "source_table": row["source_table"], "source_id": row["source_id"],
            "level": row["level"]}
