"""Zun containers (CHI@Edge): which device reservation a container ran in, when, and when it was stopped.

Zun stores no device for a k8s device's container: ``host`` is the zun-compute service (one per
k3s cluster) and ``hostname`` the pod's own (on the 2021-22 ``zun`` devices ``host`` was the
device's name; unused: those rows were deleted at lease end). A container names its Blazar
reservation in its ``annotations`` JSON (key ``zun.openstack.org/reservation_id``,
ChameleonCloud/zun). A container holds its reservation's devices from created_at until updated_at
when its status is final (Deleted: the k8s driver found its deployment gone, Error, Dead), else it
is still there. It is stopped from a successful ``stop``, ``pause`` or ``kill`` action until the
next successful ``start``/``unpause``/``reboot``/``restart`` or its end. Zun hard-deletes
explicitly deleted containers with their actions and events (no trace at all), and by Chameleon's code also the
Deleted ones (the k8s driver sets ``auto_remove``): docs/data-sources.md "Zun".
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.declared import ChildOf, SourceTable
from exporter.columns import BOOKING_RESERVATION

_ZUN_TIMESTAMPS = ("created_at", "updated_at")  # Zun hard-deletes: no deleted/deleted_at
# A container's end depends on its status (updated_at only when final): no spans_end, so the live
# recent-row filter keeps every container, and with it their actions and events (child_of).
READS = (
    # container.environment is left out on purpose: users put secrets there
    SourceTable("zun", "container",
                ("id", "uuid", "project_id", "user_id", "name", "image", "cpu", "memory", "disk", "status",
                 "status_reason", "task_state", "host", "started_at", "container_type", "capsule_id",
                 "annotations", *_ZUN_TIMESTAMPS),
                optional=True, required=("id", "uuid", "created_at"),
                description="Zun containers not explicitly deleted (hard delete otherwise)"),
    SourceTable("zun", "container_actions",
                ("id", "action", "container_uuid", "request_id", "user_id", "project_id", "start_time",
                 "finish_time", "message", *_ZUN_TIMESTAMPS),
                optional=True, required=("id", "action", "container_uuid"),
                child_of=ChildOf("zun.container", "uuid", "container_uuid"),
                description="Zun container actions (create/start/stop/delete ...)"),
    SourceTable("zun", "container_actions_events",
                ("id", "event", "action_id", "start_time", "finish_time", "result", *_ZUN_TIMESTAMPS),
                optional=True, child_of=ChildOf("zun.container_actions", "id", "action_id"),
                description="Zun action events (no host column); result Error = failed action"),
)

CONTAINERS = "zun.container"
ACTIONS = "zun.container_actions"
RESERVATION_ANNOTATION = "zun.openstack.org/reservation_id"
FINAL_STATUSES = ("Deleted", "Error", "Dead")
STOPPING_ACTIONS = ("stop", "pause", "kill")
RESUMING_ACTIONS = ("start", "unpause", "reboot", "restart")


def container_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One row per container: source_table, source_id, container (uuid), reservation_id, project_id,
    start, end, status, rejection_reason (missing_fk: no reservation annotation)."""
    rows = common.table_rows(tables, CONTAINERS, {
        "id": common.ID, "uuid": common.ID, "project_id": common.TEXT, "status": common.TEXT,
        "annotations": common.TEXT, "created_at": common.WHEN, "updated_at": common.WHEN})
    reservation = pl.col("annotations").str.json_path_match(f'$["{RESERVATION_ANNOTATION}"]')
    return rows.select(
        pl.lit(CONTAINERS).alias("source_table"), pl.col("id").alias("source_id"), pl.col("uuid").alias("container"),
        reservation.alias("reservation_id"), "project_id", "status", pl.col("created_at").alias("start"),
        pl.when(pl.col("status").is_in(FINAL_STATUSES)).then(pl.col("updated_at")).alias("end"),
        pl.lit(BOOKING_RESERVATION).alias("booking"),
    ).with_columns(common.first_rule_failed([
        ("null_start", pl.col("start").is_null()),
        ("missing_fk", pl.col("reservation_id").is_null() | (pl.col("reservation_id") == "")),
        ("implausible_time", common.implausible_time("start", "end")),
        *common.range_rules(),
    ]))


def container_reject_detail() -> pl.Expr:
    return common.detail_json("container", "reservation_id", "status", "start", "end")


def stop_windows(tables: Mapping[str, pl.LazyFrame], containers: pl.LazyFrame) -> pl.LazyFrame:
    """One row per successful stopping action: [its time, next resuming action or the container's end).

    ``containers``: container_windows output (usable rows). Output: source_table, source_id,
    container, reservation_id, project_id, booking, action, start, end, resumed_at, container_end,
    container_found, rejection_reason.
    """
    actions = _actions(tables)
    # stops at the same moment (one request stopping several containers) in row id order, whatever
    # order the rows come in, so merging names the same row
    stops = (actions.filter(pl.col("action").is_in(STOPPING_ACTIONS))
             .sort("at", *common.id_order("source_id"), nulls_last=True))
    resumes = (actions.filter(pl.col("action").is_in(RESUMING_ACTIONS) & pl.col("at").is_not_null())
               .select("container", pl.col("at").alias("resumed_at")).sort("resumed_at"))
    owners = containers.select("container", "reservation_id", "project_id", "booking",
                               pl.col("end").alias("container_end"), pl.lit(True).alias("container_found")
                               ).unique("container", keep="first", maintain_order=True)
    dated = stops.filter(pl.col("at").is_not_null()).join_asof(
        resumes, left_on="at", right_on="resumed_at", by="container", strategy="forward",
        allow_exact_matches=False, check_sortedness=False)
    undated = stops.filter(pl.col("at").is_null()).with_columns(pl.lit(None, dtype=common.TIME).alias("resumed_at"))
    windows = (pl.concat([dated, undated], how="diagonal_relaxed")
               .join(owners, on="container", how="left", maintain_order="left")
               .with_columns(pl.col("container_found").fill_null(False), pl.col("at").alias("start"),
                             pl.min_horizontal("resumed_at", "container_end").alias("end")))
    return windows.select(
        pl.lit(ACTIONS).alias("source_table"), "source_id", "container", "reservation_id", "project_id", "booking",
        "action", "start", "end", "resumed_at", "container_end", "container_found",
    ).with_columns(common.first_rule_failed([
        ("missing_fk", ~pl.col("container_found")),
        *common.start_rules("start"),
        *common.range_rules(),
    ]))


def stop_reject_detail() -> pl.Expr:
    return common.detail_json("container", "action", "start", "resumed_at", "container_end", "container_found")


def _actions(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Successful actions: container, action, at, source_id (failed: its message is Error or an event has result Error)."""
    # The action ids are INT on both sides (docs/data-sources.md "Zun"): joined as integers (common.JOIN_ID);
    # the container uuids stay text.
    rows = common.table_rows(tables, ACTIONS, {
        "id": common.JOIN_ID, "action": common.TEXT, "container_uuid": common.ID, "start_time": common.WHEN,
        "created_at": common.WHEN, "message": common.TEXT})
    events = common.table_rows(tables, "zun.container_actions_events",
                               {"action_id": common.JOIN_ID, "result": common.TEXT})
    failed = events.filter(pl.col("result") == "Error").select(pl.col("action_id").alias("id")).unique()
    rows, failed = common.same_keys(rows, failed, "id")
    return rows.join(failed, on="id", how="anti").filter(pl.col("message").fill_null("") != "Error").select(
        pl.col("id").cast(pl.String).alias("source_id"), pl.col("container_uuid").alias("container"),
        pl.col("action").str.to_lowercase().alias("action"), pl.coalesce("start_time", "created_at").alias("at"))
