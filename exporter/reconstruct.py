"""Reconstruction: snapshot tables -> canonical spans (+ rejects) -> timeline, with an audit.

Stages (each level goes through settle -> cut at snapshot -> [merge] -> [clip into parent]):

1. hosts        nova compute_nodes ∪ blazar computehosts per hostname  -> total
2. reservable   blazar computehosts per hostname, clipped into total    -> reservable
3. committed    allocation ⋈ reservation ⋈ lease ⋈ host, into reservable -> committed / maintenance
4. occupied     instances; reserved ones clipped into their reservation's committed (or
                maintenance) window on the same host (else orphan)       -> occupied
5. stopped      stop..resume action windows, merged per instance, into occupied -> stopped
6. timeline     time-weighted leaves on the grid (exporter.timeline), then both invariants.

Rules are in the adapters (exporter.adapters.*) and in docs/semantics.md; this module only
wires them, collects at the named checkpoints and keeps the books (exporter.spanbooks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter import audit as auditing
from exporter import host_levels, intervals, manual_rules, reconstruct_io
from exporter import inference as inference_module
from exporter.priority import DEFAULT_PRIORITY
from exporter.rulesfile import Rule
from exporter.progress import SILENT, Progress
from exporter.ledger import order_free_sum
from exporter.timeline import timeline_from_spans
from exporter.adapters.common import hours_between
from exporter.adapters import (
    blazar_hosts, host_resources, instance_actions, nova_hosts, nova_instances, request_specs,
)
from exporter.schema import (
    BOOKING_MAINTENANCE, BOOKING_RESERVATION, HIERARCHY_CLIPPED, HIERARCHY_DIRECT, HIERARCHY_ROOT, LEVEL_COMMITTED, LEVEL_MAINTENANCE,
    LEVEL_OCCUPIED, LEVEL_RESERVABLE, LEVEL_STOPPED, LEVEL_TOTAL, LEVELS, POOL_ONDEMAND, POOL_RESERVABLE,
    SPAN_SCHEMA, conform,
)
from exporter.errors import ConfigError, SnapshotError
from exporter.sources import declared_tables
from exporter.spanbooks import SpanBooks

HOST_KEY = ["hypervisor_hostname"]


STAGES = ("load snapshot", "spans", "timeline", "audit", "write outputs")


@dataclass(frozen=True)
class ReconstructOptions:
    """What to reconstruct: site name, timeline window [start, end) and step, maintenance projects.

    ``end=None``: the snapshot time floored to the step. ``snapshot_time=None``: from the
    snapshot's manifest, else the latest timestamp in its data.
    """

    site: str
    start: dt.datetime = dt.datetime(2016, 1, 1)
    end: dt.datetime | None = None
    step: dt.timedelta = dt.timedelta(hours=1)
    maintenance_projects: tuple[str, ...] = ("maintenance",)
    snapshot_time: dt.datetime | None = None
    rules: tuple[Rule, ...] = ()  # this site's manual rules (exporter.rulesfile)
    priority: Mapping[str, tuple[str, ...]] | None = None  # None: exporter.priority.DEFAULT_PRIORITY
    inference: str = "auto"


@dataclass(frozen=True)
class Reconstruction:
    """Spans (SPAN_SCHEMA), rejected rows (REJECT_SCHEMA), timeline (TIMELINE_SCHEMA), audit dict."""

    spans: pl.DataFrame
    rejected: pl.DataFrame
    timeline: pl.DataFrame
    audit: dict


@dataclass(frozen=True)
class SpanSet:
    """Canonical spans (SPAN_SCHEMA), rejected rows (REJECT_SCHEMA) and their accounting."""

    spans: pl.DataFrame
    rejected: pl.DataFrame
    audit: dict


def spans_from_tables(
    tables: Mapping[str, pl.LazyFrame | pl.DataFrame],
    *,
    site: str,
    snapshot_time: dt.datetime,
    maintenance_projects: Sequence[str] = ("maintenance",),
    rules: Sequence[Rule] = (),
    priority: Mapping[str, tuple[str, ...]] | None = None,
    inference: str = "auto",
) -> SpanSet:
    """Every span the tables evidence, every row they reject, and the balanced books.

    ``tables``: ``{"schema.table": frame}`` (snapshot files or live DB reads). Absent tables
    are treated as empty, with a warning in the audit (no Blazar -> everything on-demand).
    ``rules`` (this site's), ``priority`` (exporter.priority) and ``inference`` (auto/on/off)
    decide how sources combine. Raises InvariantViolation when rows or hours do not balance.
    """
    frames, warnings = _complete_tables(tables)
    books = SpanBooks(site=site, snapshot_time=snapshot_time)
    # The instance windows (and then the stop windows) do not depend on the host levels, so a
    # second thread builds them meanwhile: polars releases the GIL, and neither chain alone
    # keeps every core busy. Only this thread writes to the books.
    with ThreadPoolExecutor(max_workers=1) as side:
        instance_job = side.submit(_instance_windows, frames)
        hosts = _host_evidence(frames)
        policy, gaps = _policy(frames, hosts, rules=rules, priority=priority, inference=inference)
        warnings += gaps
        names = hosts.get_column("hypervisor_hostname").drop_nulls().unique().sort().to_list()
        inferred = None
        if policy.infer:
            inferred = inference_module.commitments(instance_job.result(), frames,
                                                    maintenance_projects=maintenance_projects)
        total = host_levels.total_spans(books, hosts, policy, names)
        reservable = host_levels.reservable_spans(books, hosts, total, policy, inferred, names)
        committed = host_levels.committed_spans(books, frames, reservable, policy, inferred=inferred,
                                                maintenance_projects=maintenance_projects, host_names=names)
        instances = instance_job.result()
        stop_job = side.submit(_stop_windows, frames, instances)
        occupied = _occupied_spans(books, instances, committed, policy)
        stopped = _stopped_spans(books, stop_job.result(), occupied, policy)
    context = _host_context(frames, hosts)
    levels = pl.collect_all(  # one query per level, run side by side
        [_canonical(level, site=site, context=context) for level in (total, reservable, committed, occupied, stopped)])
    spans = pl.concat(levels, how="vertical")
    if policy.rules:
        spans = manual_rules.with_node_types(spans, policy.rules, snapshot_time=snapshot_time,
                                             node_types=dict(policy.node_types))
    spans = spans.sort("level", "hypervisor_hostname", "start", "source_table", "source_id", nulls_last=True)
    rejected = books.all_rejected().with_columns(pl.lit(site).alias("site")).sort(
        "source_table", "source_id", "level", "start", nulls_last=True)
    audit = span_audit(books, spans, rejected, tables=frames, warnings=warnings)
    audit["ondemand_hours_outside_total"] = ondemand_hours_outside_total(occupied, total, snapshot_time=snapshot_time)
    _audit_policy(audit, policy, spans, rejected, snapshot_time=snapshot_time)
    auditing.check_sources(audit["sources"])
    return SpanSet(spans=spans, rejected=rejected, audit=audit)


def _policy(frames: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame, *, rules: Sequence[Rule],
            priority: Mapping[str, tuple[str, ...]] | None, inference: str) -> tuple[host_levels.Policy, list[str]]:
    """The site's policy, and the warning when Blazar has no soft delete (inference then on in auto)."""
    missing = inference_module.missing_soft_delete(frames)
    warnings = [inference_module.soft_delete_warning(missing)] if missing else []
    node_types: dict[str, tuple[str, ...]] = {}
    if any(rule.matched("node_type") for rule in rules):
        blazar_rows = hosts.lazy().filter(pl.col("rejection_reason").is_null()
                                          & (pl.col("source_table") == "blazar.computehosts"))
        attributes = blazar_hosts.host_attributes(blazar_rows, blazar_hosts.named_capabilities(frames)).collect()
        for node_type, group in attributes.group_by("node_type"):
            node_types[str(node_type[0])] = tuple(sorted(group.get_column("hypervisor_hostname").to_list()))
    infer = inference == "on" or (inference == "auto" and bool(missing))
    return host_levels.Policy(rules=tuple(rules), priority=dict(priority or DEFAULT_PRIORITY), infer=infer,
                              node_types=node_types), warnings


def _audit_policy(audit: dict, policy: host_levels.Policy, spans: pl.DataFrame, rejected: pl.DataFrame, *,
                  snapshot_time: dt.datetime) -> None:
    """Priority, inference and the per-rule table (with a warning per rule that changed nothing)."""
    audit["priority"] = {level: list(sources) for level, sources in policy.priority.items()}
    audit["inference"] = policy.infer
    if policy.rules:
        audit["rules"] = manual_rules.rule_table(policy.rules, spans, rejected, snapshot_time=snapshot_time)
        audit["warnings"] = audit["warnings"] + manual_rules.unmatched(policy.rules, audit["rules"])


def _complete_tables(tables: Mapping[str, pl.LazyFrame | pl.DataFrame]) -> tuple[dict[str, pl.LazyFrame], list[str]]:
    """Every declared table as a LazyFrame (absent -> empty) and a warning per absent non-optional one."""
    frames, warnings = {}, []
    for source in declared_tables():
        frame = tables.get(source.name)
        if frame is None and not source.optional:
            effect = "no Blazar data: every host and instance counts as on-demand" if source.schema == "blazar" \
                else "its rows are treated as absent"
            warnings.append(f"table {source.name} is missing; {effect}")
        frames[source.name] = pl.LazyFrame() if frame is None else frame.lazy()
    return frames, warnings


def _host_evidence(frames: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Checkpoint: every host row of nova and Blazar, with its rejection reason (if any)."""
    parts = [nova_hosts.nova_host_windows(frames), blazar_hosts.blazar_host_windows(frames)]
    return pl.concat(parts, how="vertical_relaxed").with_columns(pl.lit(LEVEL_TOTAL).alias("level")).collect()


def _occupied_spans(books: SpanBooks, instances: pl.DataFrame, committed: pl.DataFrame,
                    policy: host_levels.Policy) -> pl.DataFrame:
    """Reserved instances clipped into their reservation's window on their host; on-demand ones as they are."""
    settled = host_levels.settled_rows(books, instances.with_columns(pl.lit(LEVEL_OCCUPIED).alias("level")), policy,
                                       level=LEVEL_OCCUPIED, detail=nova_instances.instance_reject_detail())
    reserved = settled.filter(pl.col("booking") == BOOKING_RESERVATION)
    windows = committed.select("reservation_id", "hypervisor_hostname", "start", "end")
    inside = books.clipped_into(reserved, windows, by=["reservation_id", *HOST_KEY], reason="orphan")
    maintenance = committed.filter(pl.col("level") == LEVEL_MAINTENANCE).get_column("reservation_id").unique()
    inside = inside.with_columns(
        pl.when(pl.col("reservation_id").is_in(maintenance.implode()))
        .then(pl.lit(BOOKING_MAINTENANCE)).otherwise(pl.col("booking")).alias("booking"))
    return pl.concat([inside, settled.filter(pl.col("booking") != BOOKING_RESERVATION)], how="vertical_relaxed")


def ondemand_hours_outside_total(occupied: pl.DataFrame, total: pl.DataFrame, *, snapshot_time: dt.datetime) -> float:
    """Hours of on-demand instances on hosts with no total evidence then (e.g. hard-deleted nova rows)."""
    ondemand = occupied.filter(pl.col("booking") != BOOKING_RESERVATION).select(*HOST_KEY, "start", "end")
    _, outside = intervals.clip_to_parent(ondemand.lazy(), total.lazy(), by=HOST_KEY, open_end=snapshot_time)
    hours = hours_between("start", "end", snapshot_time=snapshot_time)
    return float(outside.select(order_free_sum(hours)).collect().item() or 0.0)


def _instance_windows(frames: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Checkpoint: every instance row with its window and booking (or rejection reason)."""
    # Links first, streamed, so the large spec JSON column is never held whole.
    links = request_specs.reservation_links(frames["nova_api.request_specs"]).collect(engine="streaming")
    return nova_instances.instance_windows(frames, links=links.lazy()).collect()


def _stop_windows(frames: Mapping[str, pl.LazyFrame], instances: pl.DataFrame) -> pl.DataFrame:
    """Checkpoint: every stopping action with its window (or rejection reason)."""
    return instance_actions.stop_windows(frames, instances.lazy()).with_columns(
        pl.lit(LEVEL_STOPPED).alias("level")).collect()


def _stopped_spans(books: SpanBooks, windows: pl.DataFrame, occupied: pl.DataFrame,
                   policy: host_levels.Policy) -> pl.DataFrame:
    settled = host_levels.settled_rows(books, windows, policy, level=LEVEL_STOPPED,
                                       detail=instance_actions.stop_reject_detail())
    merged = books.merged(settled, by=["entity_id"])
    parents = occupied.select("entity_id", "start", "end")
    stopped = books.clipped_into(merged, parents, by=["entity_id"])
    # A stopped period has its instance's booking (maintenance when the instance is in a maintenance lease).
    bookings = occupied.select("entity_id", pl.col("booking").alias("_parent_booking")).unique("entity_id")
    return (stopped.join(bookings, on="entity_id", how="left")
            .with_columns(pl.coalesce("_parent_booking", "booking").alias("booking")).drop("_parent_booking"))


def _host_context(frames: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame) -> dict[str, pl.LazyFrame]:
    """What the resource rule needs about every host: usable rows, capabilities, ironic/KVM."""
    usable = hosts.filter(pl.col("rejection_reason").is_null()).lazy()
    blazar_rows = usable.filter(pl.col("source_table") == "blazar.computehosts")
    capabilities = blazar_hosts.named_capabilities(frames)
    return {
        "host_windows": usable,
        "attributes": blazar_hosts.host_attributes(blazar_rows, capabilities),
        "kinds": host_resources.host_kinds(usable),
    }


def _canonical(spans: pl.DataFrame, *, site: str, context: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Spans of one stage in SPAN_SCHEMA: resources, node_type, pool and hierarchy_status."""
    level = spans.get_column("level")
    whole_host = bool(level.is_in([LEVEL_TOTAL, LEVEL_RESERVABLE]).all())
    own = _own_resources(spans)
    enriched = host_resources.with_host_resources(own.lazy(), whole_host=whole_host, **context)
    if "booking" not in own.columns:
        enriched = enriched.with_columns(pl.lit(None, dtype=pl.String).alias("booking"))
    changed = (pl.col("start") != pl.col("original_start")) | pl.col("end").ne_missing(pl.col("original_end"))
    return conform(enriched.with_columns(
        pl.lit(site).alias("site"),
        pl.when(pl.col("level") == LEVEL_TOTAL).then(None)
        .when(pl.col("level").is_in([LEVEL_RESERVABLE, LEVEL_COMMITTED, LEVEL_MAINTENANCE])).then(pl.lit(POOL_RESERVABLE))
        .when(pl.col("booking").is_in([BOOKING_RESERVATION, BOOKING_MAINTENANCE])).then(pl.lit(POOL_RESERVABLE))
        .otherwise(pl.lit(POOL_ONDEMAND)).alias("pool"),
        (pl.coalesce("source", "source_table") if "source" in own.columns else pl.col("source_table")).alias("source"),
        pl.when(pl.col("level") == LEVEL_TOTAL).then(pl.lit(HIERARCHY_ROOT))
        .when(changed).then(pl.lit(HIERARCHY_CLIPPED)).otherwise(pl.lit(HIERARCHY_DIRECT)).alias("hierarchy_status"),
    ), SPAN_SCHEMA)


def _own_resources(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` + own_vcpus/own_memory_mb/own_disk_gb: an instance's or a reservation slot's size."""
    columns = spans.columns
    if "slot_vcpus" in columns:
        sizes = {f"own_{c}": pl.col(f"slot_{c}") for c in host_resources.INVENTORY}
    elif "vcpus" in columns and "booking" in columns:
        sizes = {f"own_{c}": pl.col(c) for c in host_resources.INVENTORY}
    else:
        sizes = {f"own_{c}": pl.lit(None, dtype=pl.Float64) for c in host_resources.INVENTORY}
    sized = spans.with_columns(**sizes)
    return sized.drop([c for c in ("node_type", "gpus", "nodes", *host_resources.INVENTORY) if c in columns])


def span_audit(books: SpanBooks, spans: pl.DataFrame, rejected: pl.DataFrame, *,
               tables: Mapping[str, pl.LazyFrame], warnings: list[str]) -> dict:
    """The audit dict: per-source accounting, rejections and clips by reason and year, warnings."""
    snapshot = books.snapshot_time
    sources = auditing.source_accounting(books.all_inputs(), spans, rejected, books.all_clipped(),
                                         snapshot_time=snapshot)
    hours = hours_between("start", "end", snapshot_time=snapshot)
    by_reason = (rejected.with_columns(pl.col("start").dt.year().alias("year"))
                 .group_by("level", "source_table", "rejection_reason", "year")
                 .agg(pl.len().alias("rows"), order_free_sum(pl.col("hours")))
                 .rename({"rejection_reason": "reason"}).sort("level", "source_table", "reason", "year", nulls_last=True))
    clipped = (books.all_clipped().group_by("level", "source_table", "reason", "year").agg(order_free_sum(pl.col("hours")))
               .sort("level", "source_table", "reason", "year", nulls_last=True))
    counted = (spans.group_by("level", "source_table", pl.col("start").dt.year().alias("year"))
               .agg(order_free_sum(hours).alias("hours")).sort("level", "source_table", "year"))
    blazar_only = spans.filter((pl.col("level") == LEVEL_TOTAL) & (pl.col("source_table") == "blazar.computehosts"))
    return {
        "site": spans["site"][0] if spans.height else books.site,
        "snapshot_time": snapshot.isoformat(),
        "levels": list(LEVELS),
        "sources": sources.to_dicts(),
        "rejected": by_reason.to_dicts(),
        "clipped": clipped.to_dicts(),
        "counted": counted.to_dicts(),
        "blazar_only_total_hours": float(blazar_only.select(order_free_sum(hours)).item() or 0.0),
        "table_rows": {name: int(frame.select(pl.len()).collect().item()) for name, frame in sorted(tables.items())},
        "warnings": warnings,
    }


def reconstruct_snapshot(snapshot_dir: Path, options: ReconstructOptions,
                         progress: Progress | None = None) -> Reconstruction:
    """Spans, rejects, timeline and audit of one snapshot directory; both invariants checked.

    Raises SnapshotError (unreadable snapshot), ConfigError (empty window) or
    InvariantViolation (rows or hours do not balance).
    """
    progress = progress or SILENT
    span_set, snapshot_time, time_source = _snapshot_spans(Path(snapshot_dir), options, progress)
    end = options.end or floor_to_step(snapshot_time, options.start, options.step)
    if end <= options.start:
        raise ConfigError(f"empty timeline window: --from {options.start} is not before --to {end}")
    with progress.stage("timeline"):
        timeline = timeline_from_spans(span_set.spans, start=options.start, end=end, step=options.step,
                                       open_end=snapshot_time)
    with progress.stage("audit"):
        audit = dict(span_set.audit, snapshot_time_source=time_source)
        audit["timeline"] = auditing.timeline_accounting(
            span_set.spans, timeline, start=options.start, end=end, step=options.step, snapshot_time=snapshot_time)
        auditing.check_invariants(audit)
    return Reconstruction(span_set.spans, span_set.rejected, timeline, audit)


def _snapshot_spans(snapshot_dir: Path, options: ReconstructOptions,
                    progress: Progress) -> tuple[SpanSet, dt.datetime, str]:
    """Load (declared columns only) and build spans; the raw tables are freed on return."""
    with progress.stage("load snapshot"):
        loaded = reconstruct_io.load_snapshot(snapshot_dir, snapshot_time=options.snapshot_time)
    with progress.stage("spans"):
        try:
            span_set = spans_from_tables(loaded.tables, site=options.site, snapshot_time=loaded.snapshot_time,
                                         maintenance_projects=options.maintenance_projects, rules=options.rules,
                                         priority=options.priority, inference=options.inference)
        except pl.exceptions.ComputeError as err:
            # Pages of a file whose footer read fine can still be corrupt; they fail when read.
            if "parquet" not in str(err).lower():
                raise
            raise SnapshotError(f"snapshot {snapshot_dir}: a table file is corrupt "
                                f"({reconstruct_io.first_line(err)})") from None
    return span_set, loaded.snapshot_time, loaded.snapshot_time_source


def reconstruct_to_directory(snapshot_dir: Path, options: ReconstructOptions, out_dir: Path,
                             progress: Progress | None = None) -> str:
    """``reconstruct_snapshot`` then ``write_reconstruction``; returns the summary text."""
    rec = reconstruct_snapshot(snapshot_dir, options, progress=progress)
    progress = progress or SILENT
    with progress.stage("write outputs"):
        summary = write_reconstruction(rec, out_dir)
    return f"{summary}\nwritten: {out_dir}"


def floor_to_step(when: dt.datetime, origin: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The last grid point (origin + k × step) at or before ``when``."""
    return origin + step * ((when - origin) // step)


def write_reconstruction(rec: Reconstruction, out_dir: Path) -> str:
    """Write spans/rejected/timeline parquet and audit.json into ``out_dir``; return the summary text."""
    reconstruct_io.write_outputs(Path(out_dir), spans=rec.spans, rejected=rec.rejected, timeline=rec.timeline,
                                 audit=rec.audit)
    return auditing.summary_text(rec.audit)
