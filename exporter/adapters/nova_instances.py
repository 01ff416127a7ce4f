"""Nova instances: occupied and stopped spans, booked against reservations or on-demand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import polars as pl

from exporter.adapters import common
from exporter.columns import BOOKING_ONDEMAND, BOOKING_RESERVATION
from exporter.adapters.declared import TIMESTAMPS, ChildOf, SourceTable

_INSTANCE_COLUMNS = (
    "id", "uuid", "user_id", "project_id", "host", "node", "vcpus", "memory_mb", "root_gb",
    "ephemeral_gb", "instance_type_id", "vm_state", "power_state", "task_state", "launched_at",
    "terminated_at", "availability_zone", *TIMESTAMPS,
)
_ACTION_COLUMNS = ("id", "instance_uuid", "action", "request_id", "start_time", "finish_time",
                   "message", *TIMESTAMPS)
_EVENT_COLUMNS = ("id", "action_id", "event", "start_time", "finish_time", "result", "host",
                  *TIMESTAMPS)

# Nova writes an action, its events and a request spec only while it also saves the instance row
# (task_state/vm_state -> updated_at): the live exporter reads them by the changed instances' keys.
OF_INSTANCE = ChildOf("nova.instances", "uuid", "instance_uuid", written_with_parent=True)
OF_ACTION = ChildOf("nova.instance_actions", "id", "action_id", written_with_parent=True)
# archived rows belong to the same instances (their keys may be in either table) but are moved by
# nova-manage, not written with an instance save: the live exporter scans them like any table.
ARCHIVED_OF_INSTANCE = replace(OF_INSTANCE, written_with_parent=False)
ARCHIVED_OF_ACTION = replace(OF_ACTION, written_with_parent=False)
INSTANCE_SPANS_END = ("deleted_at", "terminated_at")  # an instance's span ends at the first of them

READS = (
    SourceTable("nova", "instances", _INSTANCE_COLUMNS,
                required=("id", "uuid", "created_at", "node", "launched_at"), spans_end=INSTANCE_SPANS_END),
    SourceTable("nova", "instance_actions", _ACTION_COLUMNS, required=("id", "instance_uuid", "action"),
                child_of=OF_INSTANCE),
    SourceTable("nova", "instance_actions_events", _EVENT_COLUMNS,
                required=("id", "action_id", "event", "result"), child_of=OF_ACTION),
    SourceTable("nova_api", "request_specs", ("id", "instance_uuid", "spec", "created_at", "updated_at"),
                required=("instance_uuid", "spec"), child_of=OF_INSTANCE,
                description="scheduler hints / flavor name link instances to Blazar reservations"),
    SourceTable("nova", "shadow_instances", _INSTANCE_COLUMNS, optional=True, spans_end=INSTANCE_SPANS_END),
    SourceTable("nova", "shadow_instance_actions", _ACTION_COLUMNS, optional=True, child_of=ARCHIVED_OF_INSTANCE),
    SourceTable("nova", "shadow_instance_actions_events", _EVENT_COLUMNS, optional=True,
                child_of=ARCHIVED_OF_ACTION),
)

TERMINATE_EVENT = "compute_terminate_instance"
ACTION_TABLES = ("nova.instance_actions", "nova.shadow_instance_actions")
SUCCESS = "Success"


def instance_windows(tables: Mapping[str, pl.LazyFrame], *, links: pl.LazyFrame) -> pl.LazyFrame:
    """One row per instance (live and shadow) with its occupied window, booking, or why not.

    Window = [created_at, first of (terminated_at, deleted_at, first successful
    compute_terminate_instance event)); so a late deleted_at cannot stretch it. ``links``:
    ``request_specs.reservation_links`` (instance_uuid, reservation_id).
    Output: source_table, source_id, entity_id (uuid), hypervisor_hostname (node), project_id,
    reservation_id, booking, start, end, vcpus, memory_mb, disk_gb, vm_state, placed (the row's
    node is set), rejection_reason, plus the raw times (created_at, launched_at, terminated_at,
    deleted_at, terminate_event).
    """
    instances = _instance_rows(tables)
    ended = _with_terminate_times(instances, _terminate_events(tables))
    booked = ended.join(links.rename({"instance_uuid": "entity_id"}), on="entity_id", how="left").with_columns(
        pl.when(pl.col("reservation_id").is_not_null()).then(pl.lit(BOOKING_RESERVATION))
        .otherwise(pl.lit(BOOKING_ONDEMAND)).alias("booking"),
        pl.col("created_at").alias("start"),
        pl.min_horizontal("terminated_at", "deleted_at", "terminate_event").alias("end"),
        (pl.col("hypervisor_hostname").fill_null("") != "").alias("placed"),
    )
    return booked.with_columns(common.first_rule_failed(instance_rules()))


def placeable(windows: pl.DataFrame) -> pl.DataFrame:
    """The windows whose placement is worth walking: every one that fails no rule but
    missing_host (an offloaded row's node is NULL; its events may still name its hosts)."""
    return windows.filter(pl.col("rejection_reason").is_null() | (pl.col("rejection_reason") == "missing_host"))


def with_placements(windows: pl.DataFrame, segments: pl.DataFrame) -> pl.DataFrame:
    """``windows`` with the rules decided again: a row is placed when its node or one of its
    placement segments (``nova_segments.placement_segments``) names a host."""
    # Only a row whose node is not set can change: look its segments up, not every instance's.
    unplaced = windows.filter(~pl.col("placed")).get_column("entity_id")
    named = segments.filter(pl.col("hypervisor_hostname").is_not_null() & pl.col("entity_id").is_in(unplaced.implode()))
    return windows.with_columns(
        (pl.col("placed") | pl.col("entity_id").is_in(named.get_column("entity_id").unique().implode())).alias("placed")
    ).with_columns(common.first_rule_failed(instance_rules()))


def instance_rules() -> list[tuple[str, pl.Expr]]:
    """Why an instance row carries no occupied window (first match wins)."""
    return [
        ("duplicate_entity", pl.col("shadow_twin")),
        ("never_launched", pl.col("launched_at").is_null()),
        *common.start_rules(),
        ("non_finite_inventory", common.non_finite("vcpus", "memory_mb", "disk_gb")),
        ("missing_host", ~pl.col("placed")),
        *common.range_rules(),
    ]


def instance_reject_detail() -> pl.Expr:
    """The raw times and node of a rejected instance, as JSON text."""
    return common.detail_json("entity_id", "hypervisor_hostname", "created_at", "launched_at",
                              "terminated_at", "deleted_at", "terminate_event")


def _instance_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    rows = common.typed_union(tables, ("nova.instances", "nova.shadow_instances"), {
        "id": common.ID, "uuid": common.ID, "project_id": common.TEXT, "node": common.TEXT,
        "vcpus": common.NUMBER, "memory_mb": common.NUMBER, "root_gb": common.NUMBER,
        "ephemeral_gb": common.NUMBER, "created_at": common.WHEN, "launched_at": common.WHEN,
        "terminated_at": common.WHEN, "deleted_at": common.WHEN, "vm_state": common.TEXT})
    return rows.select(
        "source_table", pl.col("id").alias("source_id"),
        pl.col("uuid").alias("entity_id"), pl.col("node").alias("hypervisor_hostname"), "project_id",
        "vcpus", "memory_mb",
        (pl.col("root_gb").fill_null(0) + pl.col("ephemeral_gb").fill_null(0)).alias("disk_gb"),
        "created_at", "launched_at", "terminated_at", "deleted_at", "vm_state", "shadow_twin")


def action_rows(tables: Mapping[str, pl.LazyFrame], *, kinds: Sequence[str]) -> pl.LazyFrame:
    """source_table, source_id, action_id, entity_id (instance uuid), action, at, failed for
    the actions whose name is in ``kinds``.

    ``at`` is the action's request time (start_time, else created_at): the user asked for the
    change then, and the host stays held either way. ``failed``: Nova marked the action
    ``message='Error'`` or one of its events has result Error.
    """
    rows = common.typed_union(tables, ACTION_TABLES, {
        "id": common.JOIN_ID, "instance_uuid": common.ID, "action": common.TEXT, "start_time": common.WHEN,
        "created_at": common.WHEN, "message": common.TEXT})
    actions = rows.select(
        "source_table", "shadow_twin", pl.col("id").cast(pl.String).alias("source_id"), pl.col("id").alias("action_id"),
        pl.col("instance_uuid").alias("entity_id"), "action",
        pl.coalesce("start_time", "created_at").alias("at"),
        (pl.col("message").fill_null("") == "Error").alias("marked_error")).filter(pl.col("action").is_in(list(kinds)))
    events, actions = common.same_keys(_event_rows(tables), actions, "action_id")
    outcomes = events.join(actions.select("action_id"), on="action_id", how="semi").group_by("action_id").agg(
        (pl.col("result") == "Error").any().alias("event_error"))
    return actions.join(outcomes, on="action_id", how="left").select(
        "source_table", "shadow_twin", "source_id", "action_id", "entity_id", "action", "at",
        (pl.col("marked_error") | pl.col("event_error").fill_null(False)).alias("failed"))


def _event_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    return common.typed_union(tables, ("nova.instance_actions_events", "nova.shadow_instance_actions_events"), {
        "action_id": common.JOIN_ID, "event": common.TEXT, "result": common.TEXT,
        "start_time": common.WHEN, "finish_time": common.WHEN})


def _terminate_events(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """entity_id, terminate_event: when each successful terminate event finished (an instance may have several)."""
    events, actions = common.same_keys(
        _event_rows(tables).filter((pl.col("event") == TERMINATE_EVENT) & (pl.col("result") == SUCCESS)),
        _action_owners(tables), "action_id")
    # The events first (a few per instance), then the owners of those actions only: the join hashes
    # half the actions and their uuids are read for those rows (500 x 10: 0.20 -> 0.17 s).
    events = events.collect()
    actions = actions.filter(pl.col("action_id").is_in(events.get_column("action_id").implode()))
    return events.lazy().join(actions, on="action_id", how="inner").select(
        "entity_id", pl.coalesce("finish_time", "start_time").alias("terminate_event"))


def _with_terminate_times(instances: pl.LazyFrame, terminated: pl.LazyFrame) -> pl.LazyFrame:
    """``instances`` + terminate_event: the first of ``terminated``'s times for the row's uuid (null: none)."""
    # The earliest per instance row, grouped by the row's number: grouping by the text uuid and joining
    # that back on it hashed the uuids twice (500 x 10: instance_windows 0.267 -> 0.246 s CPU, BENCHMARKS.md session 12).
    numbered = instances.with_row_index("_instance")
    first = (numbered.select("_instance", "entity_id").join(terminated, on="entity_id", how="inner")
             .group_by("_instance").agg(pl.col("terminate_event").min()))
    return numbered.join(first, on="_instance", how="left").drop("_instance")


def _action_owners(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    rows = common.typed_union(tables, ACTION_TABLES, {"id": common.JOIN_ID, "instance_uuid": common.ID})
    return rows.select(pl.col("id").alias("action_id"), pl.col("instance_uuid").alias("entity_id"))
