"""Knowledge time on spans: when the databases first showed a span's evidence, and until when.

Rules (docs/semantics.md "Two time axes"), first match wins:
- a span an operator's rule added or changed (``rule_id``): from the rule's provenance date;
- an inferred span (source ``inference``): from the earliest ``created_at`` of the reserved
  instances it was inferred from (``inference.reserved_instances``: usable rows only; same
  reservation and host; for an inferred reservable host, any reserved instance on the host) until the latest ``deleted_at`` once all are deleted — for a
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
from exporter.reconstruct.inference import SOURCE as INFERENCE, reserved_instances
from exporter.reconstruct.rulesfile import Rule

_ROW = "__row"
AUDIT_SCHEMA = "openstack_audit"


def with_knowledge_times(spans: pl.DataFrame, frames: Mapping[str, pl.LazyFrame], *, instances: pl.DataFrame,
                         rules: Sequence[Rule], snapshot_time: dt.datetime) -> pl.DataFrame:
    """``spans`` with known_from / known_until filled by the rules above (column order kept)."""
    known_from, known_until = _row_times(spans, frames)
    known_until = known_until.fill_null(pl.lit(snapshot_time, dtype=TIME))
    # Rule and inferred spans (few, often none) take their times from the rules' dates and the
    # evidence: only they are joined to those, the other spans keep their rows' times (joining
    # every span to the evidence, and to the rows on two text keys, took 3.0-3.9 s CPU on the 614k
    # spans of 500 x 10 where this takes 0.7-0.8 s).
    special = (spans.lazy().with_row_index(_ROW).select(_ROW, "source_table", "rule_id", "reservation_id",
                                                        "hypervisor_hostname", "evidence")
               .filter(pl.col("rule_id").is_not_null() | (pl.col("source_table") == INFERENCE)).collect())
    if special.height:
        times = _special_times(special, frames, instances=instances, rules=rules, snapshot_time=snapshot_time)
        known_from = known_from.scatter(times[_ROW], times["known_from"])
        known_until = known_until.scatter(times[_ROW], times["known_until"])
    return spans.with_columns(known_from, known_until).select(spans.columns)


def _special_times(special: pl.DataFrame, frames: Mapping[str, pl.LazyFrame], *, instances: pl.DataFrame,
                   rules: Sequence[Rule], snapshot_time: dt.datetime) -> pl.DataFrame:
    """_ROW, known_from, known_until of the rule and inferred spans in ``special``."""
    rule_dates = pl.DataFrame({"rule_id": [rule.id for rule in rules],
                               "rule_known": [dt.datetime.combine(rule.provenance.date, dt.time()) for rule in rules]},
                              schema={"rule_id": pl.String, "rule_known": TIME})
    reserved = reserved_instances(instances).lazy()
    by_reservation = _evidence(reserved, ["reservation_id", "hypervisor_hostname"], "r")
    by_host = _evidence(reserved, ["hypervisor_hostname"], "h")
    by_device = _evidence(common.table_rows(frames, "blazar.device_allocations", {
        "device_id": common.ID, "created_at": common.WHEN, "deleted_at": common.WHEN})
        .rename({"device_id": "hypervisor_hostname"}), ["hypervisor_hostname"], "d")
    inferred = pl.col("source_table") == INFERENCE
    with_reservation = inferred & pl.col("reservation_id").is_not_null()
    retired_device = inferred & (pl.col("evidence") == RETIRED_EVIDENCE).fill_null(False)
    return (special.lazy()
            .join(rule_dates.lazy(), on="rule_id", how="left")
            .join(by_reservation, on=["reservation_id", "hypervisor_hostname"], how="left")
            .join(by_host, on="hypervisor_hostname", how="left")
            .join(by_device, on="hypervisor_hostname", how="left")
            .select(
                _ROW,
                known_from=pl.when(pl.col("rule_id").is_not_null()).then(pl.col("rule_known"))
                .when(retired_device).then(pl.col("d_from"))
                .when(with_reservation).then(pl.col("r_from")).otherwise(pl.col("h_from")).cast(TIME),
                known_until=pl.when(pl.col("rule_id").is_not_null()).then(None)
                .when(retired_device).then(pl.col("d_until"))
                .when(with_reservation).then(pl.col("r_until")).otherwise(pl.col("h_until"))
                .fill_null(pl.lit(snapshot_time, dtype=TIME)).cast(TIME))
            .collect())


def _row_times(spans: pl.DataFrame, frames: Mapping[str, pl.LazyFrame]) -> tuple[pl.Series, pl.Series]:
    """known_from, known_until of every span from its source row (null: no row, or a table not in
    ``frames``): the row's creation and deletion.

    A span's ``source_id`` is its row's declared primary key (e.g. ``audit_id`` in an audit table,
    whose ``id`` is the audited row's), so rows are matched on that key, one table at a time."""
    keys = {source.name: source.primary_key for source in declared_tables()}
    by_table = spans.select("source_table", "source_id").with_row_index(_ROW).partition_by(
        "source_table", as_dict=True, include_key=False)
    parts = []
    for (name,), spans_of in by_table.items():
        if name not in frames:
            continue
        key = keys.get(name, "id")
        rows = common.table_rows(frames, name, {key: common.JOIN_ID, _known_from(name): common.WHEN, "deleted_at": common.WHEN}
                                 ).select(pl.col(key).alias("source_id"), pl.col(_known_from(name)).cast(TIME).alias("known_from"),
                                          pl.col("deleted_at").cast(TIME).alias("known_until"))
        if rows.collect_schema()["source_id"] == pl.Int64:
            spans_of = spans_of.with_columns(common.as_integer_id(pl.col("source_id")))
        parts.append((spans_of, rows))
    found = pl.collect_all([spans_of.lazy().join(rows, on="source_id", how="left") for spans_of, rows in parts])
    for at, (spans_of, rows) in enumerate(parts):
        if found[at].height > spans_of.height:  # a key on several rows: the first one counts
            found[at] = spans_of.lazy().join(rows.unique("source_id", keep="first", maintain_order=True),
                                             on="source_id", how="left").collect()
    empty = pl.DataFrame(schema={_ROW: pl.get_index_type(), "known_from": TIME, "known_until": TIME})
    times = pl.concat([empty, *(part.select(empty.columns) for part in found)])
    return tuple(pl.repeat(None, spans.height, dtype=TIME, eager=True).alias(name).scatter(times[_ROW], times[name])
                 for name in ("known_from", "known_until"))


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
