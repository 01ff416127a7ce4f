"""What each span is (``span_type``), the evidence that created it (``evidence``), how sure it is
(``confidence``) and its ``hours``: the rule of docs/semantics.md ("Span kinds"), written once.

- span_type: the level's kind; a span an operator's rule or the inference source added has a
  kind of its own (``rule_host``, ``inferred_allocation``, …), so no reader takes it for a row;
  an edge site's device spans have the device kinds (``blazar_device``, ``zun_container_occupied``, …).
- evidence: the kind of the row (``source_table``) that created the span.
- confidence: ``direct`` for a row that states it; ``inferred`` for the inference source, for
  host existence known only from Blazar (a ``total`` span from ``blazar.computehosts``) and for
  on-demand pool evidence (an absence from Blazar's complete history, an on-demand instance); the
  rule's own confidence for a span a rule added or changed (``rule_id``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from exporter.columns import (
    CONFIDENCES, EVIDENCE_KINDS, LEVEL_COMMITTED, LEVEL_CONFLICT, LEVEL_MAINTENANCE, LEVEL_OCCUPIED, LEVEL_ONDEMAND,
    LEVEL_RESERVABLE, LEVEL_STOPPED, LEVEL_TOTAL, SPAN_TYPES,
)
from exporter.engine.intervals import hours_between
from exporter.errors import InvariantViolation
from exporter.reconstruct.inference import SOURCE as INFERENCE_SOURCE
from exporter.reconstruct.rulesfile import RULES_SOURCE, Rule

SPAN_TYPE_OF_LEVEL = {
    LEVEL_TOTAL: "nova_host",
    LEVEL_RESERVABLE: "blazar_host",
    LEVEL_COMMITTED: "blazar_allocation",
    LEVEL_MAINTENANCE: "maintenance_allocation",
    LEVEL_OCCUPIED: "nova_instance_occupied",
    LEVEL_STOPPED: "nova_instance_stopped",
    LEVEL_ONDEMAND: "ondemand_host",
    LEVEL_CONFLICT: "conflict_exclusion",
}
RULE_SPAN_TYPES = {LEVEL_TOTAL: "rule_host", LEVEL_RESERVABLE: "rule_reservable_host",
                   LEVEL_MAINTENANCE: "rule_maintenance", LEVEL_ONDEMAND: "rule_ondemand_host"}
# An edge site's devices (exporter.reconstruct.device_levels) go through the same levels.
DEVICE_SPAN_TYPES = {
    LEVEL_TOTAL: "blazar_device",
    LEVEL_RESERVABLE: "blazar_device_reservable",
    LEVEL_COMMITTED: "blazar_device_allocation",
    LEVEL_MAINTENANCE: "maintenance_device_allocation",
    LEVEL_OCCUPIED: "zun_container_occupied",
    LEVEL_STOPPED: "zun_container_stopped",
}
DEVICE_TABLES = ("blazar.devices", "blazar.device_allocations", "zun.container", "zun.container_actions")
INFERRED_SPAN_TYPES = {LEVEL_RESERVABLE: "inferred_blazar_host", LEVEL_COMMITTED: "inferred_allocation",
                       LEVEL_MAINTENANCE: "inferred_maintenance_allocation"}
EVIDENCE_OF_TABLE = {
    "nova.compute_nodes": "nova_compute_node",
    "nova.shadow_compute_nodes": "nova_compute_node",
    "nova.services": "nova_service",
    "blazar.computehosts": "blazar_computehost",
    "blazar.computehost_allocations": "blazar_allocation",
    "openstack_audit.audit_blazar_computehosts": "blazar_computehost_audit",
    "nova.instances": "nova_instance",
    "nova.shadow_instances": "nova_instance",
    "nova.instance_actions": "nova_instance_action",
    "nova.shadow_instance_actions": "nova_instance_action",
    "blazar.devices": "blazar_device",
    "blazar.device_allocations": "blazar_device_allocation",
    "zun.container": "zun_container",
    "zun.container_actions": "zun_container_action",
    RULES_SOURCE: "manual_rule",
    INFERENCE_SOURCE: "reserved_instances",
}
KIND_COLUMNS = ("span_type", "evidence", "confidence", "hours")
# maintenance spans from the Blazar host flag (exporter.reconstruct.masks), not from a lease
MASK_TABLES = ("blazar.computehosts", "openstack_audit.audit_blazar_computehosts")


def with_kinds(spans: pl.DataFrame, rules: Sequence[Rule], *, snapshot_time: dt.datetime) -> pl.DataFrame:
    """``spans`` with span_type, evidence and confidence (where not set already: a stage that knows
    better, e.g. conflict spans, sets its own) and hours (always from start and end)."""
    table, level = pl.col("source_table"), pl.col("level")
    kind = (pl.when(table == RULES_SOURCE).then(level.replace_strict(RULE_SPAN_TYPES, default=None))
            .when(table == INFERENCE_SOURCE).then(level.replace_strict(INFERRED_SPAN_TYPES, default=None))
            .when((table == "blazar.devices") & (level == LEVEL_MAINTENANCE)).then(pl.lit("device_unreservable"))
            .when(table.is_in(MASK_TABLES) & (level == LEVEL_MAINTENANCE)).then(pl.lit("maintenance_mask"))
            .when(table.is_in(DEVICE_TABLES)).then(level.replace_strict(DEVICE_SPAN_TYPES, default=None))
            .otherwise(level.replace_strict(SPAN_TYPE_OF_LEVEL, default=None)))
    rule_confidence = pl.col("rule_id").replace_strict({rule.id: rule.confidence for rule in rules}, default=None,
                                                       return_dtype=pl.String)
    confidence = (pl.when(pl.col("rule_id").is_not_null()).then(rule_confidence)
                  .when(table == INFERENCE_SOURCE).then(pl.lit("inferred"))
                  .when((level == LEVEL_TOTAL) & (table == "blazar.computehosts")).then(pl.lit("inferred"))
                  .when(level == LEVEL_ONDEMAND).then(pl.lit("inferred"))  # pool from an absence or an instance
                  .otherwise(pl.lit("direct")))
    evidence = (pl.when((level == LEVEL_ONDEMAND) & (table == "blazar.computehosts"))
                .then(pl.lit("blazar_history_absence"))
                .otherwise(table.replace_strict(EVIDENCE_OF_TABLE, default=None)))
    derived = {"span_type": kind, "evidence": evidence, "confidence": confidence}
    return spans.with_columns(
        *((pl.coalesce(name, expr) if name in spans.columns else expr).alias(name) for name, expr in derived.items()),
        hours_between("start", "end", snapshot_time=snapshot_time).alias("hours"))


def check_kinds(spans: pl.DataFrame) -> None:
    """Raise InvariantViolation when a span has no kind, evidence or confidence, or one outside the
    vocabularies of exporter/columns.py (a bug: every value must be documented)."""
    failures = []
    for column, known in (("span_type", SPAN_TYPES), ("evidence", EVIDENCE_KINDS), ("confidence", CONFIDENCES)):
        bad = spans.filter(~pl.col(column).is_in(list(known)).fill_null(False))
        if bad.height:
            pairs = bad.select("level", "source_table", column).unique().sort(pl.all(), nulls_last=True).rows()
            failures.append(f"{column} {', '.join(map(str, pairs))} not in the vocabulary (exporter/columns.py)")
    if failures:
        raise InvariantViolation("spans without a known kind: " + "; ".join(failures), details=failures)
