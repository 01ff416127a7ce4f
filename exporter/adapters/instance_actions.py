"""Instance actions: the stopped sub-spans of an instance's occupied time.

An instance is stopped from a successful stop, suspend, pause or shelve action until the next
successful start, resume, unpause or unshelve action, or until the instance ends. An action is
successful unless Nova marked it ``message = 'Error'`` or one of its events has result Error.
Rules in words: docs/semantics.md "stopped". The tables are declared in
``nova_instances.READS``.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.nova_instances import action_rows

STOPPING_ACTIONS = ("stop", "suspend", "pause", "shelve")
RESUMING_ACTIONS = ("start", "resume", "unpause", "unshelve")


def stop_windows(tables: Mapping[str, pl.LazyFrame], instances: pl.LazyFrame) -> pl.LazyFrame:
    """One row per successful stopping action: [action time, next resume or instance end).

    ``instances`` is ``instance_windows`` output. Output: source_table, source_id, entity_id,
    hypervisor_hostname, project_id, reservation_id, booking, action, start, end, resumed_at,
    instance_end, instance_found, rejection_reason.
    """
    # Collected once (tens of thousands of rows): stops and resumes both read it, and the query
    # engine would otherwise build it (two table unions, the events' join) once for each.
    acted = action_rows(tables, kinds=STOPPING_ACTIONS + RESUMING_ACTIONS).filter(~pl.col("failed")).collect()
    actions = acted.lazy()
    stops = actions.filter(pl.col("action").is_in(STOPPING_ACTIONS)).sort("at", nulls_last=True)
    resumes = (
        actions.filter(pl.col("action").is_in(RESUMING_ACTIONS) & pl.col("at").is_not_null())
        .select("entity_id", pl.col("at").alias("resumed_at"))
        .sort("resumed_at")
    )
    # Only the instances that have such an action can own one: the first row of each of those (not
    # of every instance: 344k text keys hashed for 20k stops on the 500 x 10 site).
    acting = instances.filter(pl.col("entity_id").is_in(acted.get_column("entity_id").implode()))
    owners = common.first_row_each(acting).select(
        "entity_id", "hypervisor_hostname", "project_id", "reservation_id", "booking", "vcpus", "memory_mb",
        "disk_gb", pl.col("end").alias("instance_end"), pl.lit(True).alias("instance_found"),
    )
    resumed = stops.filter(pl.col("at").is_not_null()).join_asof(
        resumes, left_on="at", right_on="resumed_at", by="entity_id", strategy="forward",
        allow_exact_matches=False, check_sortedness=False)
    undated = stops.filter(pl.col("at").is_null()).with_columns(pl.lit(None, dtype=common.TIME).alias("resumed_at"))
    windows = (
        pl.concat([resumed, undated], how="diagonal_relaxed")
        .join(owners, on="entity_id", how="left")
        .with_columns(
            pl.col("instance_found").fill_null(False),
            pl.col("at").alias("start"),
            pl.min_horizontal("resumed_at", "instance_end").alias("end"),
        )
    )
    return windows.select(
        "source_table", "shadow_twin", "source_id", "entity_id", "hypervisor_hostname", "project_id", "reservation_id",
        "booking", "vcpus", "memory_mb", "disk_gb", "action", "start", "end", "resumed_at", "instance_end", "instance_found",
    ).with_columns(common.first_rule_failed(stop_rules()))


def stop_rules() -> list[tuple[str, pl.Expr]]:
    """Why a stopping action carries no stopped window (first match wins)."""
    return [
        ("duplicate_entity", pl.col("shadow_twin")),
        ("missing_fk", ~pl.col("instance_found")),
        *common.start_rules("start"),
        *common.range_rules(),
    ]


def stop_reject_detail() -> pl.Expr:
    """The instance, the action and its times, as JSON text."""
    return common.detail_json("entity_id", "action", "start", "resumed_at", "instance_end", "instance_found")
