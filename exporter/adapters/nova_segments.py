"""One instance's placement segments from its change events, migrations and flavors (pure Python).

``exporter.adapters.nova_placements`` gathers the evidence; this module applies the rules of
docs/semantics.md ("occupied: placement segments") to one instance at a time. Only instances
whose placement changed, or whose row lost its host, come here: the rest are one segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from exporter.adapters import common
from exporter.adapters import nova_placements as placements
from exporter.priority import DEFAULT_PRIORITY, first_speaking

Size = tuple[float, float, float]
UNCONFIRMED = ("finished", "confirming", "reverting")  # instance_extra still holds old and new
MIGRATION_OF = {"resize": ("resize", "migration"), "revert": ("resize", "migration"),
                "move": ("live-migration",), "rebuild": ("evacuation",)}


@dataclass
class Segment:
    start: object
    end: object = None
    hosts: dict[str, str | None] = field(default_factory=dict)
    started_by: tuple[str, dict | None] | None = None  # (kind, matched migration row)
    ended_by: tuple[str, dict | None] | None = None
    size: tuple[Size | None, str | None] = (None, None)


SEGMENT_SCHEMA = {"entity_id": pl.String, "start": common.TIME, "end": common.TIME, "hypervisor_hostname": pl.String,
                  "vcpus": pl.Float64, "memory_mb": pl.Float64, "disk_gb": pl.Float64, "host_evidence": pl.String,
                  "size_evidence": pl.String}
ROW_HOST = "nova.instances.node"  # the host sources (exporter.priority "host") that name it
ROW_SIZE = "nova.instances"  # and the size sources ("size")


@dataclass(frozen=True)
class Evidence:
    """What is known site-wide: service host -> hypervisor, flavor sizes by id, and the site's
    order of host and size sources (highest first)."""

    hypervisors: Mapping[str, str]
    flavors: Mapping[str, Size]
    host_order: Sequence[str] = DEFAULT_PRIORITY["host"]
    size_order: Sequence[str] = DEFAULT_PRIORITY["size"]


def segments_of(instance: Mapping, changes: Sequence[Mapping], migrations: Sequence[Mapping],
                embedded: Mapping[str, Size], evidence: Evidence) -> list[dict]:
    """Segment rows (start, end, hypervisor_hostname, vcpus, memory_mb, disk_gb, host_evidence,
    size_evidence) of one instance; ``changes`` sorted by ``at``, ``migrations`` by created_at."""
    segments, placed = _walk(instance, changes, migrations)
    for seg in segments:
        seg.hosts["nova.instance_actions_events.host"] = _event_host(seg, changes, evidence.hypervisors)
        seg.hosts["nova.migrations"] = _migration_host(seg)
    if placed and segments:
        segments[-1].hosts[ROW_HOST] = instance.get("hypervisor_hostname") or None
    _size_backwards(segments, instance, embedded, evidence)
    rows = []
    for seg in segments:
        host, host_source = first_speaking(seg.hosts, evidence.host_order)
        size, size_source = seg.size
        size = size or (None, None, None)
        rows.append({"start": seg.start, "end": seg.end, "hypervisor_hostname": host,
                     "vcpus": size[0], "memory_mb": size[1], "disk_gb": size[2],
                     "host_evidence": host_source, "size_evidence": size_source})
    return rows


def _walk(instance: Mapping, changes: Sequence[Mapping], migrations: Sequence[Mapping]) -> tuple[list[Segment], bool]:
    """Cut [start, end) at each move, offload and re-placement; returns (segments, placed at the end)."""
    start, end = instance["start"], instance["end"]
    segments, placed = [Segment(start)], True
    for index, change in enumerate(changes):
        at = change["at"]
        if at <= start or (end is not None and at >= end):
            continue
        kind = _boundary(change, changes[index + 1:], instance)
        if kind is None:
            continue
        matched = _matching_migration(kind, at, migrations)
        if kind == "leave" and placed:
            segments[-1].end, segments[-1].ended_by, placed = at, ("leave", None), False
        elif kind == "unshelve" and not placed:
            segments.append(Segment(at, started_by=("unshelve", None), hosts={"arrival": change["service_host"]}))
            placed = True
        elif kind in MIGRATION_OF and placed:
            segments[-1].end, segments[-1].ended_by = at, (kind, matched)
            segments.append(Segment(at, started_by=(kind, matched), hosts={"arrival": change["service_host"]}))
    if placed:
        segments[-1].end = end
    return segments, placed


def _boundary(change: Mapping, later: Sequence[Mapping], instance: Mapping) -> str | None:
    """What a change event does to the placement: resize, revert, move, rebuild, unshelve, leave, or None."""
    event = change["event"]
    if event == "compute_finish_resize":
        return "resize"
    if event == "compute_finish_revert_resize":
        return "revert"
    if event == "compute_post_live_migration_at_destination":
        return "move"
    if event == "compute_rebuild_instance":
        return "rebuild" if change["action"] == "evacuate" else None
    if event == "compute_unshelve_instance":
        return "unshelve" if change["scheduled"] else None
    if event == "compute_shelve_offload_instance":
        return "leave"
    if event == "compute_shelve_instance":
        return "leave" if _offloaded_at_once(later, instance) else None
    return None


def _offloaded_at_once(later: Sequence[Mapping], instance: Mapping) -> bool:
    """A shelve offloads at once (Nova's default shelved_offload_time = 0) unless later evidence
    says it stayed: an offload event of its own, an unshelve that scheduled nothing, a delete run
    by a compute host (an offloaded instance is deleted by the API alone), or the row still
    ``shelved`` when no unshelve followed."""
    for change in later:
        if change["event"] in ("compute_shelve_offload_instance", "compute_terminate_instance"):
            return False
        if change["event"] == "compute_unshelve_instance":
            return bool(change["scheduled"])
    return instance.get("vm_state") != "shelved"


def _matching_migration(kind: str, at, migrations: Sequence[Mapping]) -> dict | None:
    """The latest migration of the kind's types requested at or before ``at``."""
    types = MIGRATION_OF.get(kind)
    if types is None:
        return None
    found = None
    for row in migrations:
        if row["created_at"] is not None and row["created_at"] <= at and row["migration_type"] in types:
            found = row
    return dict(found) if found is not None else None


def _event_host(seg: Segment, changes: Sequence[Mapping], hypervisors: Mapping[str, str]) -> str | None:
    """The hypervisor named by the event that placed the segment, else by an event run on its host."""
    arrival = hypervisors.get(seg.hosts.pop("arrival", None) or "")
    if arrival is not None:
        return arrival
    for change in changes:
        inside = change["start"] is not None and change["start"] >= seg.start and (
            seg.end is None or change["start"] < seg.end)
        if inside and change["event"] not in ("compute_finish_resize", "compute_finish_revert_resize",
                                              "compute_post_live_migration_at_destination",
                                              "compute_unshelve_instance") and not (
                change["event"] == "compute_rebuild_instance" and change["action"] == "evacuate"):
            host = hypervisors.get(change["service_host"] or "")
            if host is not None:
                return host
    return None


def _migration_host(seg: Segment) -> str | None:
    """dest_node of the migration that brought the instance here (source_node for a revert),
    else source_node of the one that took it away (dest_node for a revert)."""
    if seg.started_by is not None and seg.started_by[1] is not None:
        kind, row = seg.started_by
        return row["source_node"] if kind == "revert" else row["dest_node"]
    if seg.ended_by is not None and seg.ended_by[1] is not None:
        kind, row = seg.ended_by
        return row["dest_node"] if kind == "revert" else row["source_node"]
    return None


def _size_backwards(segments: list[Segment], instance: Mapping, embedded: Mapping[str, Size],
                    evidence: Evidence) -> None:
    """Sizes from the present backwards: the current flavor, then across each resize its old
    flavor (across a revert: the flavor it reverted from)."""
    row_size = (instance["vcpus"], instance["memory_mb"], instance["disk_gb"])
    current = first_speaking({"nova.instance_extra.flavor": embedded.get("cur"), ROW_SIZE: row_size},
                             evidence.size_order)
    for seg in reversed(segments):
        seg.size = current
        if seg.started_by is None or seg.started_by[0] not in ("resize", "revert") or seg.started_by[1] is None:
            continue
        kind, row = seg.started_by
        side = "old" if kind == "resize" else "new"
        pending = row.get("status") in UNCONFIRMED
        before = first_speaking({"nova.instance_extra.flavor": embedded.get(side) if pending else None,
                                 "nova_api.flavors": evidence.flavors.get(row[f"{side}_instance_type_id"] or "")},
                                evidence.size_order)
        if before[0] is not None:
            current = before


def placement_segments(tables: Mapping[str, pl.LazyFrame], instances: pl.DataFrame, *,
                       priority: Mapping[str, Sequence[str]] | None = None) -> pl.DataFrame:
    """Segments of every instance in ``instances`` (entity_id, hypervisor_hostname = its row's
    node, start, end, vcpus, memory_mb, disk_gb, vm_state), by the ``host`` and ``size`` source
    orders of ``priority`` (default: exporter.priority.DEFAULT_PRIORITY).

    Output: entity_id, start, end, hypervisor_hostname, vcpus, memory_mb, disk_gb, host_evidence,
    size_evidence. An instance whose placement never changed and whose row names its node is
    one segment (its row) while the row is the first host source and a size source; the others
    are walked one by one.
    """
    priority = {**DEFAULT_PRIORITY, **(priority or {})}
    changes = placements.instance_changes(tables)
    movers = changes.filter(pl.col("event").is_in(list(placements.ARRIVALS)) | pl.col("event").is_in(
        ["compute_shelve_instance", "compute_shelve_offload_instance"])).select(
        pl.col("entity_id").unique()).collect().get_column("entity_id")
    unique = common.first_row_each(instances)
    row_speaks = priority["host"][0] == ROW_HOST and ROW_SIZE in priority["size"]
    walked = unique.filter(pl.col("entity_id").is_in(movers.implode()) | pl.col("hypervisor_hostname").is_null()
                           | (not row_speaks))
    # (no instance walked, as on a site where none moves: all are still, without an anti join of their text keys)
    still = unique if walked.is_empty() else unique.join(walked.select("entity_id"), on="entity_id", how="anti")
    still = still.select(
        "entity_id", "start", "end", "hypervisor_hostname", "vcpus", "memory_mb", "disk_gb",
        pl.lit(ROW_HOST).alias("host_evidence"), pl.lit(ROW_SIZE).alias("size_evidence"))
    evidence = Evidence(placements.service_hypervisors(tables), placements.flavor_sizes(tables),
                        host_order=tuple(priority["host"]), size_order=tuple(priority["size"]))
    return pl.concat([still, _walked_segments(tables, walked, changes, evidence)], how="vertical_relaxed")


def _walked_segments(tables: Mapping[str, pl.LazyFrame], walked: pl.DataFrame, changes: pl.LazyFrame,
                     evidence: Evidence) -> pl.DataFrame:
    if not walked.height:  # no instance moved or lost its host: the change list is not built at all
        return pl.DataFrame(schema=SEGMENT_SCHEMA)
    wanted = walked.get_column("entity_id").implode()
    # every column orders: changes at one moment must be walked in one order whatever the join hands over
    by_change = (changes.filter(pl.col("entity_id").is_in(wanted))
                 .sort("entity_id", "at", "event", "start", "service_host", "action", "scheduled", nulls_last=True).collect()
                 .partition_by("entity_id", as_dict=True))
    moves = placements.migration_rows(tables).filter(pl.col("entity_id").is_in(wanted))
    by_move = moves.partition_by("entity_id", as_dict=True)
    embedded = placements.embedded_flavors(tables, walked.get_column("entity_id"))
    rows = []
    for instance in walked.iter_rows(named=True):
        key = (instance["entity_id"],)
        own_changes = by_change[key].to_dicts() if key in by_change else []
        own_moves = by_move[key].to_dicts() if key in by_move else []
        for row in segments_of(instance, own_changes, own_moves, embedded.get(instance["entity_id"], {}), evidence):
            rows.append({"entity_id": instance["entity_id"], **row})
    return pl.DataFrame(rows, schema=SEGMENT_SCHEMA, orient="row")
