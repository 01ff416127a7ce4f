"""Placement segments: where an instance was and how big, over its life (shelve, resize, moves).

An instance's occupancy is a sequence of segments ``[start, end)`` on one hypervisor with one
size. Boundaries are the successful compute events that change where it runs (the change takes
effect when the event finishes): a move (``compute_finish_resize``, ``compute_finish_revert_resize``,
``compute_post_live_migration_at_destination``, ``compute_rebuild_instance`` of an evacuation),
an offload (``compute_shelve_offload_instance``, or ``compute_shelve_instance`` when the shelve
offloaded at once) and an unshelve that scheduled the instance anew. Offloaded time is no segment.

Each segment's host and size come from the evidence that speaks for it, highest priority first
(the site's ``host`` and ``size`` lists, exporter.priority; a site may reorder them in
``etc/sites.yaml``). docs/semantics.md states the rules.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import polars as pl

from exporter.adapters import common
from exporter.adapters.declared import SourceTable
from exporter.adapters.nova_instances import ARCHIVED_OF_INSTANCE, OF_INSTANCE

_MIGRATION_COLUMNS = ("id", "instance_uuid", "migration_type", "status", "source_compute", "dest_compute",
                      "source_node", "dest_node", "old_instance_type_id", "new_instance_type_id",
                      "created_at", "updated_at", "deleted_at", "deleted")
READS = (
    # a resize, migration or offload also saves the instance (host/node, flavor, vm_state)
    SourceTable("nova", "migrations", _MIGRATION_COLUMNS, optional=True, required=("instance_uuid",),
                child_of=OF_INSTANCE,
                description="resizes and migrations: source/dest hypervisor and old/new flavor per move"),
    SourceTable("nova", "shadow_migrations", _MIGRATION_COLUMNS, optional=True, child_of=ARCHIVED_OF_INSTANCE),
    SourceTable("nova", "instance_extra", ("instance_uuid", "flavor", "deleted_at", "deleted"), optional=True,
                primary_key="instance_uuid", required=("instance_uuid", "flavor"), child_of=OF_INSTANCE,
                description="embedded flavor copies {cur, old, new}: sizes of hard-deleted flavors"),
    SourceTable("nova_api", "flavors", ("id", "name", "vcpus", "memory_mb", "root_gb", "ephemeral_gb"),
                optional=True, required=("id", "vcpus"), description="flavor sizes by id (hard-deleted)"),
)

# Events after which the instance runs on the event's host (taken at their finish time).
ARRIVALS = {"compute_finish_resize": "resize", "compute_finish_revert_resize": "revert",
            "compute_post_live_migration_at_destination": "move", "compute_unshelve_instance": "unshelve",
            "compute_rebuild_instance": "rebuild"}
# Events that run on the host the instance is on when they start.
ON_HOST = ("compute__do_build_and_run_instance", "compute_stop_instance", "compute_start_instance",
           "compute_reboot_instance", "compute_pause_instance", "compute_unpause_instance",
           "compute_suspend_instance", "compute_resume_instance", "compute_shelve_instance",
           "compute_shelve_offload_instance", "compute_terminate_instance", "compute_snapshot_instance",
           "compute_backup_instance", "compute_rescue_instance", "compute_unrescue_instance",
           "compute_resize_instance", "compute_live_migration", "compute_revert_resize")
SCHEDULED = "schedule_instances"  # an unshelve scheduled anew only when the instance was offloaded
MOVED = ("resize", "migration", "live-migration", "evacuation")


def instance_changes(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Successful events that place, move or offload an instance, and host-naming events.

    Columns: entity_id, action, event, start, at (finish, else start), service_host, scheduled
    (the action also scheduled the instance). Not sorted, not collected: callers filter first
    (joining and sorting every event of a site is most of the cost, for a few instances).
    """
    actions = common.typed_union(tables, ("nova.instance_actions", "nova.shadow_instance_actions"), {
        "id": common.JOIN_ID, "instance_uuid": common.ID, "action": common.TEXT})
    events = common.typed_union(tables, ("nova.instance_actions_events", "nova.shadow_instance_actions_events"), {
        "action_id": common.JOIN_ID, "event": common.TEXT, "result": common.TEXT, "start_time": common.WHEN,
        "finish_time": common.WHEN, "host": common.TEXT})
    events, actions = common.same_keys(events, actions, "action_id", "id")
    scheduled = events.filter(pl.col("event") == SCHEDULED).select("action_id").unique().with_columns(
        pl.lit(True).alias("scheduled"))
    wanted = events.filter((pl.col("result") == "Success") & pl.col("event").is_in([*ARRIVALS, *ON_HOST]))
    return (
        wanted.join(actions.select(pl.col("id").alias("action_id"), pl.col("instance_uuid").alias("entity_id"),
                                   "action"), on="action_id", how="inner")
        .join(scheduled, on="action_id", how="left")
        .select("entity_id", "action", "event", pl.col("start_time").alias("start"),
                pl.coalesce("finish_time", "start_time").alias("at"), pl.col("host").alias("service_host"),
                pl.col("scheduled").fill_null(False))
        .filter(pl.col("at").is_not_null())
    )


def service_hypervisors(tables: Mapping[str, pl.LazyFrame]) -> dict[str, str]:
    """nova-compute service host -> hypervisor_hostname, where the host runs exactly one (KVM)."""
    nodes = common.typed_union(tables, ("nova.compute_nodes", "nova.shadow_compute_nodes"), {
        "host": common.TEXT, "hypervisor_hostname": common.TEXT})
    unique = (nodes.drop_nulls(["host", "hypervisor_hostname"]).group_by("host")
              .agg(pl.col("hypervisor_hostname").unique()).filter(pl.col("hypervisor_hostname").list.len() == 1)
              .collect())
    return {row["host"]: row["hypervisor_hostname"][0] for row in unique.iter_rows(named=True)}


# After (entity_id, created_at), what orders migrations created at one moment: every other column, so
# the latest one a move matches is the same whatever order the rows arrive in (docs/semantics.md).
_MIGRATION_TIES = ("migration_type", "source_node", "dest_node", "old_instance_type_id", "new_instance_type_id",
                   "status", "source_table")


def migration_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Moves that happened (not failed or in error): entity_id, created_at, type, nodes, flavor ids."""
    rows = common.typed_union(tables, ("nova.migrations", "nova.shadow_migrations"), {
        "instance_uuid": common.ID, "migration_type": common.TEXT, "status": common.TEXT,
        "source_node": common.TEXT, "dest_node": common.TEXT, "old_instance_type_id": common.ID,
        "new_instance_type_id": common.ID, "created_at": common.WHEN})
    return (rows.filter(~pl.col("status").fill_null("").is_in(["error", "failed", "cancelled"]))
            .rename({"instance_uuid": "entity_id"})
            .sort("entity_id", "created_at", *_MIGRATION_TIES, nulls_last=True).collect())


def flavor_sizes(tables: Mapping[str, pl.LazyFrame]) -> dict[str, tuple[float, float, float]]:
    """nova_api.flavors id -> (vcpus, memory_mb, disk_gb)."""
    rows = common.table_rows(tables, "nova_api.flavors", {
        "id": common.ID, "vcpus": common.NUMBER, "memory_mb": common.NUMBER, "root_gb": common.NUMBER,
        "ephemeral_gb": common.NUMBER}).collect()
    return {r["id"]: (r["vcpus"], r["memory_mb"], (r["root_gb"] or 0) + (r["ephemeral_gb"] or 0))
            for r in rows.iter_rows(named=True) if r["id"] is not None}


def embedded_flavors(tables: Mapping[str, pl.LazyFrame],
                     instances: pl.Series) -> dict[str, dict[str, tuple[float, float, float]]]:
    """instance uuid -> {"cur"/"old"/"new": (vcpus, memory_mb, disk_gb)} from instance_extra.flavor,
    for the ``instances`` (uuids) only: parsing every row's JSON into a dict was a sixth of a
    reconstruction (500 hosts x 10 years, py-spy), for the few instances whose placement changed."""
    rows = common.table_rows(tables, "nova.instance_extra", {"instance_uuid": common.ID, "flavor": common.TEXT})
    rows = rows.filter(pl.col("instance_uuid").is_in(instances.implode()))

    def size(which: str) -> pl.Expr:
        parts = [pl.col("flavor").str.json_path_match(f"$.{which}['nova_object.data'].{name}")
                 .cast(pl.Float64, strict=False) for name in ("vcpus", "memory_mb", "root_gb", "ephemeral_gb")]
        return pl.when(parts[0].is_not_null()).then(
            pl.concat_list(parts[0], parts[1], parts[2].fill_null(0) + parts[3].fill_null(0))).alias(which)

    parsed = rows.filter(pl.col("flavor").str.contains("vcpus")).select(
        "instance_uuid", size("cur"), size("old"), size("new")).collect()
    return {r["instance_uuid"]: {k: tuple(v) for k, v in r.items() if k != "instance_uuid" and v is not None}
            for r in parsed.iter_rows(named=True)}


EVIDENCE_TABLES = ("nova.instance_actions_events", "nova.migrations", "nova.shadow_migrations", "nova.instance_extra",
                   "nova_api.flavors")


def evidence_summary(present: Collection[str], tables: Mapping[str, pl.LazyFrame], segments: pl.DataFrame) -> dict:
    """For the audit: rows per evidence table (None: absent), event rows naming a host, and how
    many placement segments took their host and their size from each source."""
    rows = {name: int(tables[name].select(pl.len()).collect().item()) if name in present else None
            for name in EVIDENCE_TABLES}
    events = tables.get("nova.instance_actions_events", pl.LazyFrame())
    hosts = int(events.select(pl.col("host").is_not_null().sum()).collect().item() or 0) \
        if "nova.instance_actions_events" in present and "host" in events.collect_schema().names() else 0

    def counts(column: str) -> dict[str, int]:
        grouped = segments.group_by(pl.col(column).fill_null("none")).len().sort(column)
        return dict(grouped.iter_rows())

    return {"table_rows": rows, "event_rows_naming_a_host": hosts,
            "segments_by_host_evidence": counts("host_evidence"), "segments_by_size_evidence": counts("size_evidence")}
