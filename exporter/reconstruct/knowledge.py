"""Knowledge time on spans: when the databases first showed a span's evidence, and until when.

Rules (docs/semantics.md "Two time axes"), first match wins:
- a span an operator's rule added or changed (``rule_id``): from the rule's provenance date;
- an inferred span (source ``inference``): from the earliest ``created_at`` of the reserved
  instances it was inferred from (same reservation and host; for an inferred reservable host, any
  reserved instance on the host) until the latest ``deleted_at`` once all are deleted — for a
  retired edge device (evidence ``allocations_of_rowless_device``), of the device allocations
  naming it;
- any other span: its source row's ``created_at`` (a trigger audit row: its ``audit_changed_at``)
  until its ``deleted_at``; the row is found by the table's declared primary key.
``known_until`` is the snapshot time while the evidence is still shown; ``known_from`` is null
(unknown) when no source row stands behind the span (the derived ``ondemand`` level) or the row
has no ``created_at``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from exporter.adapters import common
from exporter.adapters.registry import declared_tables
from exporter.columns import TIME
from exporter.reconstruct.device_levels import RETIRED_EVIDENCE
from exporter.reconstruct.inference import SOURCE as INFERENCE
from exporter.reconstruct.rulesfile import Rule

KEY = ("source_table", "source_id")
AUDIT_SCHEMA = "openstack_audit"


def with_knowledge_times(spans: pl.DataFrame, frames: Mapping[str, pl.LazyFrame], *, instances: pl.DataFrame,
                         rules: Sequence[Rule], snapshot_time: dt.datetime) -> pl.DataFrame:
    """``spans`` with known_from / known_until filled by the rules above (column order kept)."""
    order = spans.columns
    rows = _row_times(spans, frames)
    rule_dates = pl.DataFrame({"rule_id": [rule.id for rule in rules],
                               "rule_known": [dt.datetime.combine(rule.provenance.date, dt.time()) for rule in rules]},
                              schema={"rule_id": pl.String, "rule_known": TIME})
    reserved = instances.lazy().filter(pl.col("reservation_id").is_not_null() & pl.col("created_at").is_not_null())
    by_reservation = _evidence(reserved, ["reservation_id", "hypervisor_hostname"], "r")
    by_host = _evidence(reserved, ["hypervisor_hostname"], "h")
    by_device = _evidence(common.table_rows(frames, "blazar.device_allocations", {
        "device_id": common.ID, "created_at": common.WHEN, "deleted_at": common.WHEN})
        .rename({"device_id": "hypervisor_hostname"}), ["hypervisor_hostname"], "d")
    inferred = pl.col("source_table") == INFERENCE
    with_reservation = inferred & pl.col("reservation_id").is_not_null()
    retired_device = inferred & (pl.col("evidence") == RETIRED_EVIDENCE).fill_null(False)
    # The joins run on the few columns they read (one row out per span, in order: every right side is
    # unique on its key), and the two times are set on the spans after: joining all ~30 span columns
    # five times copied each of them five times (2.6 -> 2.1 s CPU on 614k spans of 500 x 10).
    reads = ["source_table", "source_id", "rule_id", "reservation_id", "hypervisor_hostname", "evidence"]
    times = (spans.lazy().select(reads)
             .join(rows, on=list(KEY), how="left", maintain_order="left")
             .join(rule_dates.lazy(), on="rule_id", how="left", maintain_order="left")
             .join(by_reservation, on=["reservation_id", "hypervisor_hostname"], how="left", maintain_order="left")
             .join(by_host, on="hypervisor_hostname", how="left", maintain_order="left")
             .join(by_device, on="hypervisor_hostname", how="left", maintain_order="left")
             .select(
                 known_from=pl.when(pl.col("rule_id").is_not_null()).then(pl.col("rule_known"))
                 .when(retired_device).then(pl.col("d_from"))
                 .when(with_reservation).then(pl.col("r_from")).when(inferred).then(pl.col("h_from"))
                 .otherwise(pl.col("row_from")).cast(TIME),
                 known_until=pl.when(pl.col("rule_id").is_not_null()).then(None)
                 .when(retired_device).then(pl.col("d_until"))
                 .when(with_reservation).then(pl.col("r_until")).when(inferred).then(pl.col("h_until"))
                 .otherwise(pl.col("row_until")).fill_null(pl.lit(snapshot_time, dtype=TIME)).cast(TIME))
             .collect())
    return spans.with_columns(times).select(order)  # a height mismatch would raise here, not misalign


def _row_times(spans: pl.DataFrame, frames: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """source_table, source_id, row_from, row_until of every table the spans come from.

    A span's ``source_id`` is its row's declared primary key (e.g. ``audit_id`` in an audit table,
    whose ``id`` is the audited row's), so rows are matched on that key."""
    keys = {source.name: source.primary_key for source in declared_tables()}
    names = [name for name in spans.get_column("source_table").unique().sort().to_list() if name in frames]
    parts = [common.table_rows(frames, name, {keys.get(name, "id"): common.ID, _known_from(name): common.WHEN,
                                              "deleted_at": common.WHEN})
             .select(pl.lit(name).alias("source_table"), pl.col(keys.get(name, "id")).alias("source_id"),
                     pl.col(_known_from(name)).alias("row_from"), pl.col("deleted_at").alias("row_until"))
             .unique(list(KEY), keep="first", maintain_order=True) for name in names]
    empty = pl.LazyFrame(schema={"source_table": pl.String, "source_id": pl.String, "row_from": TIME,
                                 "row_until": TIME})
    return pl.concat([empty, *parts], how="vertical_relaxed")


def _known_from(table: str) -> str:
    """The column that dates when the database learned a row: a trigger audit row is written at its
    ``audit_changed_at`` (its ``created_at``, where present, is the audited row's)."""
    return "audit_changed_at" if table.startswith(AUDIT_SCHEMA + ".") else "created_at"


def _evidence(reserved: pl.LazyFrame, by: list[str], prefix: str) -> pl.LazyFrame:
    """Per ``by``: the earliest creation and (when every one is deleted) the latest deletion."""
    return reserved.group_by(by).agg(
        pl.col("created_at").min().cast(TIME).alias(f"{prefix}_from"),
        pl.when(pl.col("deleted_at").is_null().any()).then(None)
        .otherwise(pl.col("deleted_at").max()).cast(TIME).alias(f"{prefix}_until"))
