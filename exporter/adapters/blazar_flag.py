"""The Blazar host flag ``computehosts.reservable``: when an enrolled host was taken out of
reservation (0) — evidence of a maintenance mask (docs/semantics.md, "Maintenance masks").

Two sources: Chameleon's trigger table ``openstack_audit.audit_blazar_computehosts`` (every
INSERT and every change of the flag since the triggers exist, the row as JSON ``data`` or, in the
first deployment, as real columns), and the row's current value, which tells only that the flag
is down since its ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.declared import SourceTable
from exporter.columns import LEVEL_MAINTENANCE

AUDIT = "openstack_audit.audit_blazar_computehosts"
HOSTS = "blazar.computehosts"
_AUDIT_COLUMNS = ("audit_id", "id", "audit_event_type", "audit_event_time", "audit_changed_by", "audit_changed_at",
                  "data")
# the first audit deployment stored the audited columns as real columns instead of JSON
EARLY_AUDIT_COLUMNS = ("hypervisor_hostname", "vcpus", "memory_mb", "local_gb", "status", "reservable", "disabled",
                       "created_at", "deleted_at")

READS = (
    SourceTable("openstack_audit", "audit_blazar_computehosts", _AUDIT_COLUMNS + EARLY_AUDIT_COLUMNS,
                primary_key="audit_id", optional=True,
                description="trigger audit of blazar.computehosts: the history of the reservable flag"),
)


def mask_rules() -> list[tuple[str, pl.Expr]]:
    """Why a flag-down window cannot evidence a mask: checked in order, the first match is the reason."""
    return [
        *common.start_rules(),
        ("missing_host", pl.col("hypervisor_hostname").is_null() | (pl.col("hypervisor_hostname") == "")),
        *common.range_rules(),
    ]


def _host_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    return common.table_rows(tables, HOSTS, {
        "id": common.ID, "hypervisor_hostname": common.TEXT, "reservable": common.NUMBER,
        "created_at": common.WHEN, "updated_at": common.WHEN, "deleted_at": common.WHEN})


def current_flag_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One window per computehosts row whose flag is down: ``[updated_at, deleted_at)``."""
    down = _host_rows(tables).filter(pl.col("reservable") == 0)
    return _windows(down.select(pl.lit(HOSTS).alias("source_table"), pl.col("id").alias("source_id"),
                                "hypervisor_hostname", pl.coalesce("updated_at", "created_at").alias("start"),
                                pl.col("deleted_at").alias("end")))


def audit_flag_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One window per audit row that shows the flag down: from when the row's value is known (the
    later of its event time and its trigger time: a ``backfill`` row shows the row as it was at
    deployment) until the next audit row of the same computehost or the host row's deletion."""
    audit = common.table_rows(tables, AUDIT, {
        "audit_id": common.ID, "id": common.ID, "audit_event_type": common.TEXT, "audit_event_time": common.WHEN,
        "audit_changed_at": common.WHEN, "data": common.TEXT, "reservable": common.NUMBER,
        "hypervisor_hostname": common.TEXT})
    value = pl.coalesce(pl.col("reservable"), pl.col("data").str.json_path_match(r"$.reservable").cast(pl.Float64,
                                                                                                         strict=False))
    known = pl.max_horizontal("audit_event_time", "audit_changed_at")
    rows = audit.with_columns(value.alias("flag"), known.alias("known"), pl.coalesce(
        pl.col("hypervisor_hostname"), pl.col("data").str.json_path_match(r"$.hypervisor_hostname")).alias("named"))
    ordered = rows.sort("id", "known", "audit_id").with_columns(pl.col("known").shift(-1).over("id").alias("next"))
    deleted = _host_rows(tables).select(pl.col("id"), pl.col("hypervisor_hostname").alias("host"), "deleted_at")
    down = (ordered.filter((pl.col("flag") == 0) & (pl.col("audit_event_type").str.to_uppercase() != "DELETE"))
            .join(deleted, on="id", how="left"))
    return _windows(down.select(pl.lit(AUDIT).alias("source_table"), pl.col("audit_id").alias("source_id"),
                                pl.coalesce("host", "named").alias("hypervisor_hostname"), pl.col("known").alias("start"),
                                pl.min_horizontal("next", "deleted_at").alias("end")))


def _windows(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(pl.col("hypervisor_hostname").alias("entity_id"), pl.lit(LEVEL_MAINTENANCE).alias("level"),
                              common.first_rule_failed(mask_rules()))


def flag_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Both sources' flag-down windows (adapter windows at level maintenance, with rejection reason)."""
    return pl.concat([audit_flag_windows(tables), current_flag_windows(tables)], how="vertical_relaxed")


def mask_reject_detail() -> pl.Expr:
    return common.detail_json("hypervisor_hostname", "start", "end")
