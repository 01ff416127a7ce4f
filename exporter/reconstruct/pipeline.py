"""Reconstruction: snapshot tables -> canonical spans (+ rejects) -> timeline, with an audit.

Stages (each level goes through settle -> cut at snapshot -> [merge] -> [clip into parent]):

1. hosts        nova compute_nodes ∪ blazar computehosts per hostname  -> total
2. reservable   blazar computehosts per hostname, clipped into total    -> reservable
3. committed    allocation ⋈ reservation ⋈ lease ⋈ host, into reservable -> committed / maintenance
4. occupied     instances; reserved ones clipped into their reservation's committed (or
                maintenance) window on the same host (else orphan)       -> occupied
5. stopped      stop..resume action windows, merged per instance, into occupied -> stopped
   masks        Blazar's reservable flag down (audit history, current value), into reservable,
                outside every commitment (exporter.reconstruct.masks)   -> maintenance
6. ondemand     Blazar's complete history without the host, on-demand instances, rules; into
                total, minus reservable (exporter.reconstruct.pools)     -> ondemand
7. timeline     time-weighted leaves on the grid (exporter.reconstruct.timeline), then both invariants.

Rules are in the adapters (exporter.adapters.*), in exporter.reconstruct.semantics and in
docs/semantics.md; this module only wires them, collects at the named checkpoints and keeps the
books (exporter.reconstruct.books).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from exporter import layout
from exporter.adapters import blazar_devices, boundary, host_resources, nova_placements, nova_services
from exporter.adapters.registry import declared_tables, site_tables
from exporter.columns import RECORD_LEVELS
from exporter.config import DEFAULT_HISTORY_START, DEFAULT_MAINTENANCE_PROJECTS
from exporter.errors import ConfigError, SnapshotError
from exporter.progress import SILENT, Progress
from exporter.reconstruct import audit as auditing
from exporter.reconstruct import audit_timeline
from exporter.reconstruct import outputs as reconstruct_io
from exporter.reconstruct import (bookings, conflicts, device_family, device_levels, devices_audit, host_levels,
                                  inference, knowledge, leadtime, manual_rules, masks, pools, semantics, span_kinds)
from exporter.reconstruct import policy as policy_module
from exporter.reconstruct.books import SpanBooks
from exporter.reconstruct.policy import Policy
from exporter.reconstruct.rulesfile import Rule
from exporter.engine.resample import grid_size
from exporter.reconstruct.timeline import TimelineGrid, check_timeline_size, timeline_grid

ESSENTIAL_TABLES = ("nova.compute_nodes", "nova.instances")  # without them nothing can be rebuilt ...
EDGE_ESSENTIAL = "blazar.devices"  # ... unless the site is a CHI@Edge site (devices, no Nova)
DEFAULT_STEP = dt.timedelta(hours=1)  # the timeline grid
STAGES = ("load snapshot", "spans", "timeline", "audit", "write outputs")


@dataclass(frozen=True)
class ReconstructOptions:
    """What to reconstruct: site name, timeline window [start, end) and step, maintenance projects.

    ``end=None``: the snapshot time floored to the step. ``snapshot_time=None``: from the
    snapshot's manifest, else the latest timestamp in its data.
    """

    site: str
    start: dt.datetime = DEFAULT_HISTORY_START
    end: dt.datetime | None = None
    step: dt.timedelta = DEFAULT_STEP
    maintenance_projects: tuple[str, ...] = DEFAULT_MAINTENANCE_PROJECTS
    snapshot_time: dt.datetime | None = None
    rules: tuple[Rule, ...] = ()  # this site's manual rules (exporter.reconstruct.rulesfile)
    priority: Mapping[str, tuple[str, ...]] | None = None  # None: exporter.priority.DEFAULT_PRIORITY
    inference: str = "auto"
    # when Blazar's host history is complete: None = derived from the data, a date, or "never"
    blazar_complete_since: dt.datetime | str | None = None
    # when an edge site's devices table keeps retired devices: None = derived from the data, a date, or "never"
    device_history_complete_since: dt.datetime | str | None = None
    allow_incomplete: bool = False  # use a snapshot that is incomplete or fails its hash check (with a warning)


@dataclass(frozen=True)
class Reconstruction:
    """Spans (SPAN_SCHEMA), rejected rows (REJECT_SCHEMA), the timeline's grid, audit dict;
    an edge site's device spans and device timeline (same schemas; None: no devices); the long
    frames of extra series families (exporter.metrics.EXTRA_FAMILIES) by name."""

    spans: pl.DataFrame
    rejected: pl.DataFrame
    grid: TimelineGrid  # written part by part: the long timeline is made only when asked for
    audit: dict
    devices: pl.DataFrame | None = None
    device_timeline: pl.DataFrame | None = None
    families: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    leadtimes: pl.DataFrame | None = None  # exporter.reconstruct.leadtime: one row per lease
    leadtime_timeline: pl.DataFrame | None = None  # and its daily summary

    @cached_property
    def timeline(self) -> pl.DataFrame:
        """The long timeline (TIMELINE_SCHEMA), made on first use."""
        return self.grid.long()


@dataclass(frozen=True)
class SpanSet:
    """Canonical spans (SPAN_SCHEMA), rejected rows (REJECT_SCHEMA) and their accounting."""

    spans: pl.DataFrame
    rejected: pl.DataFrame
    audit: dict
    devices: pl.DataFrame | None = None  # an edge site's device spans (SPAN_SCHEMA); None: no device rows
    bookings: pl.DataFrame | None = None  # exporter.reconstruct.bookings.BOOKING_SCHEMA
    leadtimes: pl.DataFrame | None = None  # exporter.reconstruct.leadtime.LEADTIME_SCHEMA


def spans_from_tables(
    tables: Mapping[str, pl.LazyFrame | pl.DataFrame],
    *,
    site: str,
    snapshot_time: dt.datetime,
    maintenance_projects: Sequence[str] = DEFAULT_MAINTENANCE_PROJECTS,
    rules: Sequence[Rule] = (),
    priority: Mapping[str, tuple[str, ...]] | None = None,
    inference: str = "auto",
    blazar_complete_since: dt.datetime | str | None = None,
    device_history_complete_since: dt.datetime | str | None = None,
) -> SpanSet:
    """Every span the tables evidence, every row they reject, and the balanced books.

    ``tables``: ``{"schema.table": frame}`` (snapshot files or live DB reads). Absent tables
    are treated as empty, with a warning in the audit (no Blazar -> everything on-demand).
    ``rules`` (this site's), ``priority`` (exporter.priority) and ``inference`` (auto/on/off)
    decide how sources combine; ``blazar_complete_since`` overrides when Blazar's host history
    is complete (exporter.reconstruct.pools), ``device_history_complete_since`` when an edge site's
    devices table keeps retired devices (exporter.reconstruct.devices_audit). Raises InvariantViolation
    when rows or hours do not balance.
    """
    frames, warnings = _complete_tables(tables)
    books = SpanBooks(site=site, snapshot_time=snapshot_time)
    hosts = semantics.host_evidence(frames)
    policy, gaps = policy_module.site_policy_for(frames, hosts, rules=rules, priority=priority, inference=inference)
    history = pools.blazar_history(hosts, blazar_complete_since)
    levels, segments, instances, allocations = _levels(books, frames, hosts, policy,
                                                       maintenance_projects=maintenance_projects,
                                                       complete_since=pools.complete_since(history))
    context = semantics.host_context(frames, hosts)
    booking_rows = bookings.booking_rows(allocations)
    *canonical, booked = pl.collect_all(  # one query per level (and the bookings), run side by side
        [semantics.canonical_spans(rows, site=site, context=context) for rows in (*levels.values(), booking_rows)])
    spans, booked = (manual_rules.with_node_types(frame, policy.rules, snapshot_time=snapshot_time,
                                                  node_types=dict(policy.node_types))
                     for frame in (pl.concat(canonical, how="vertical"), booked))
    booked = bookings.bookings(booking_rows, booked)
    known = functools.partial(knowledge.with_knowledge_times, frames=frames, instances=instances, rules=policy.rules,
                              snapshot_time=snapshot_time)
    spans = known(span_kinds.with_kinds(spans, policy.rules, snapshot_time=snapshot_time).sort(
        "level", "hypervisor_hostname", "start", "source_table", "source_id", nulls_last=True))
    devices = None
    if blazar_devices.present(frames):
        device_history = devices_audit.device_history(frames, device_history_complete_since)
        devices = device_levels.device_spans(books, frames, site=site, maintenance_projects=maintenance_projects,
                                             complete_since=devices_audit.complete_since(device_history))
        devices = known(span_kinds.with_kinds(devices, policy.rules, snapshot_time=snapshot_time).sort(
            "level", "hypervisor_hostname", "start", "source_table", "source_id", nulls_last=True))
    rejected = books.all_rejected().with_columns(pl.lit(site).alias("site")).sort(
        "source_table", "source_id", "level", "start", nulls_last=True)
    every_span = spans if devices is None else pl.concat([spans, devices], how="vertical")
    counted = every_span.filter(~pl.col("level").is_in(RECORD_LEVELS))  # conflict records come from no input row
    audit = auditing.span_audit(books, counted, rejected, tables=frames, warnings=warnings + gaps)
    audit["conflicts"] = conflicts.conflict_audit(spans, rejected, books.all_clipped())
    audit["ondemand_hours_outside_total"] = semantics.ondemand_hours_outside_total(
        levels["occupied"], levels["total"], snapshot_time=snapshot_time)
    audit["placement_evidence"] = nova_placements.evidence_summary(set(tables), frames, segments)
    audit["blazar_history"] = history
    audit["hypervisors"] = host_resources.site_hypervisor(  # what the site is, from its hosts (colours)
        context["kinds"].collect(), hosts.get_column("hypervisor_hostname").drop_nulls().unique().sort().to_list())
    audit["services"] = nova_services.service_audit(frames)
    policy_module.policy_audit(audit, policy, books, spans, rejected)
    auditing.check_reject_reasons(rejected)
    span_kinds.check_kinds(every_span)
    auditing.check_sources(audit["sources"])
    conflicts.check_conflicts(audit["conflicts"])
    if devices is not None:
        audit["devices"] = devices_audit.device_evidence(frames, devices, rejected, history=device_history,
                                                         snapshot_time=snapshot_time)
    return SpanSet(spans=spans, rejected=rejected, audit=audit, devices=devices, bookings=booked,
                   leadtimes=leadtime.lease_leadtimes(frames, instances, booked, site=site,
                                                      maintenance_projects=maintenance_projects))


def _levels(books: SpanBooks, frames: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame, policy: Policy, *,
            maintenance_projects: Sequence[str], complete_since: dt.datetime | None,
            ) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Spans of every stage, in order: total, reservable, committed, occupied, stopped, ondemand;
    the instances' placement segments (for the audit); the instance windows (for lead times);
    the allocation windows (read once, for the committed level and the bookings)."""
    # The instance windows (and then the stop windows) do not depend on the host levels, so a
    # second thread builds them meanwhile: polars releases the GIL, and neither chain alone
    # keeps every core busy. Only this thread writes to the books.
    with ThreadPoolExecutor(max_workers=1) as side:
        instance_job = side.submit(semantics.instance_windows, frames, policy.priority)
        names = hosts.get_column("hypervisor_hostname").drop_nulls().unique().sort().to_list()
        inferred = None
        if policy.infer:
            inferred = inference.commitments(instance_job.result()[0], frames, maintenance_projects=maintenance_projects)
        total = host_levels.total_spans(books, hosts, policy, names)
        reservable = host_levels.reservable_spans(books, hosts, total, policy, inferred, names)
        allocations = host_levels.allocation_rows(frames, maintenance_projects=maintenance_projects)
        committed = host_levels.committed_spans(books, allocations, reservable, policy, inferred=inferred,
                                                host_names=names)
        instances, segments = instance_job.result()
        stop_job = side.submit(semantics.stop_windows, frames, instances)
        occupied = semantics.occupied_spans(books, instances, segments, committed, policy)
        stopped = semantics.stopped_spans(books, stop_job.result(), occupied, policy)
    mask = masks.mask_spans(books, frames, reservable, committed, policy)
    ondemand = pools.ondemand_spans(books, hosts, total, reservable, occupied, policy, since=complete_since,
                                    host_names=names)
    return {"total": total, "reservable": reservable, "committed": committed, "occupied": occupied,
            "stopped": stopped, "ondemand": ondemand, "mask": mask,
            "conflict": conflicts.conflict_windows(books.conflicts)}, segments, instances, allocations


def _complete_tables(tables: Mapping[str, pl.LazyFrame | pl.DataFrame]) -> tuple[dict[str, pl.LazyFrame], list[str]]:
    """Every declared table as a LazyFrame (absent -> empty) and a warning per absent non-optional one."""
    boundary.check_required_columns({name: frame.lazy() for name, frame in tables.items()})
    frames, warnings = {}, []
    edge = EDGE_ESSENTIAL in tables and not any(name in tables for name in ESSENTIAL_TABLES)
    for source in site_tables("edge" if edge else "baremetal"):
        frame = tables.get(source.name)
        if frame is None and not source.optional:
            effect = ("no Blazar data: no host is reservable, every instance is on-demand, and a host's other time "
                      "is the unknown pool unless blazar_complete_since says Blazar's history is complete") \
                if source.schema == "blazar" \
                else "its rows are treated as absent"
            warnings.append(f"table {source.name} is missing; {effect}")
        frames[source.name] = pl.LazyFrame() if frame is None else frame.lazy()
    return frames, warnings


def reconstruct_snapshot(snapshot_dir: Path, options: ReconstructOptions,
                         progress: Progress | None = None) -> Reconstruction:
    """Spans, rejects, timeline and audit of one snapshot directory; both invariants checked.

    Raises SnapshotError (unreadable snapshot), ConfigError (empty window) or
    InvariantViolation (rows or hours do not balance).
    """
    progress = progress or SILENT
    span_set, snapshot_time, time_source = snapshot_spans(Path(snapshot_dir), options, progress)
    end = options.end or floor_to_step(snapshot_time, options.start, options.step)
    if end <= options.start:
        raise ConfigError(f"empty timeline window: --from {options.start} is not before --to {end}")
    check_timeline_size(span_set.spans, start=options.start, end=end, step=options.step)
    with progress.stage("timeline"):
        grid = timeline_grid(span_set.spans, start=options.start, end=end, step=options.step, open_end=snapshot_time)
    with progress.stage("audit"):
        # where the evidence came from, so later stages (compare) find the snapshot again
        audit = dict(span_set.audit, snapshot_time_source=time_source, snapshot_dir=str(Path(snapshot_dir).resolve()))
        audit["timeline"] = audit_timeline.timeline_accounting(
            span_set.spans, grid, start=options.start, end=end, step=options.step, snapshot_time=snapshot_time)
        auditing.check_invariants(audit)
        device_timeline = None  # built and checked here: it is small (a few devices, one resource)
        if span_set.devices is not None:
            device_timeline = devices_audit.device_timeline(span_set.devices, audit, start=options.start, end=end,
                                                            step=options.step, snapshot_time=snapshot_time)
        times = [options.start + k * options.step for k in range(grid_size(start=options.start, end=end, step=options.step))]
        lead_timeline = leadtime.leadtime_timeline(span_set.leadtimes)
        node_types = grid.index.select(pl.col("site", "node_type").cast(pl.String)).unique()
        families = {**bookings.booked_ahead_families(bookings.booked_ahead(span_set.bookings, times,
                                                                           node_types=node_types)),
                    **leadtime.leadtime_family(lead_timeline)}
        if device_timeline is not None:
            families |= device_family.history_frames(device_timeline, step=options.step)
    return Reconstruction(span_set.spans, span_set.rejected, grid, audit, span_set.devices, device_timeline,
                          families=families, leadtimes=span_set.leadtimes, leadtime_timeline=lead_timeline)


def snapshot_spans(snapshot_dir: Path, options: ReconstructOptions,
                    progress: Progress) -> tuple[SpanSet, dt.datetime, str]:
    """Load (declared columns only) and build spans; the raw tables are freed on return."""
    with progress.stage("load snapshot"):
        loaded = layout.load_snapshot(snapshot_dir, columns={source.name: source.columns for source in declared_tables()},
                                       snapshot_time=options.snapshot_time, allow_incomplete=options.allow_incomplete)
        missing = [name for name in ESSENTIAL_TABLES if name not in loaded.tables]
        if missing and EDGE_ESSENTIAL not in loaded.tables:  # an edge site runs no Nova
            raise SnapshotError(f"snapshot {snapshot_dir} lacks {', '.join(missing)}; nothing can be reconstructed")
        boundary.check_not_empty(loaded.tables)
    with progress.stage("spans"):
        try:
            span_set = spans_from_tables(loaded.tables, site=options.site, snapshot_time=loaded.snapshot_time,
                                         maintenance_projects=options.maintenance_projects, rules=options.rules,
                                         priority=options.priority, inference=options.inference,
                                         blazar_complete_since=options.blazar_complete_since,
                                         device_history_complete_since=options.device_history_complete_since)
        except pl.exceptions.ComputeError as err:
            # Pages of a file whose footer read fine can still be corrupt; they fail when read.
            if "parquet" not in str(err).lower():
                raise
            raise SnapshotError(f"snapshot {snapshot_dir}: a table file is corrupt "
                                f"({layout.first_line(err)})") from None
    span_set.audit["warnings"][:0] = loaded.warnings  # the snapshot's own problems come first
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
    reconstruct_io.write_outputs(Path(out_dir), spans=rec.spans, rejected=rec.rejected, timeline=rec.grid,
                                 audit=rec.audit, devices=rec.devices, device_timeline=rec.device_timeline,
                                 families=rec.families, leadtimes=rec.leadtimes, leadtime_timeline=rec.leadtime_timeline)
    return reconstruct_io.summary_text(rec.audit)
