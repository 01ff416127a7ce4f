"""Reconstruction: snapshot tables -> canonical spans (+ rejects) -> timeline, with an audit.

Stages: load snapshot -> spans (exporter.reconstruct.span_stage: every level, the bookings, lead
times, the span audit) -> timeline (time-weighted leaves on the grid, exporter.reconstruct.timeline)
-> audit (both invariants; the extra series families) -> write outputs (exporter.reconstruct.outputs).
This module only wires the stages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from exporter import layout
from exporter.adapters import boundary
from exporter.adapters.registry import declared_tables
from exporter.config import DEFAULT_HISTORY_START, DEFAULT_MAINTENANCE_PROJECTS
from exporter.engine.resample import grid_size
from exporter.errors import ConfigError, SnapshotError
from exporter.progress import SILENT, Progress
from exporter.reconstruct import audit as auditing
from exporter.reconstruct import audit_timeline, bookings, device_family, devices_audit, leadtime
from exporter.reconstruct import outputs as reconstruct_io
from exporter.reconstruct.output_set import OutputSet
from exporter.reconstruct.rulesfile import Rule
from exporter.reconstruct.span_stage import EDGE_ESSENTIAL, ESSENTIAL_TABLES, SpanSet, spans_from_tables
from exporter.reconstruct.timeline import TimelineGrid, check_timeline_size, timeline_grid
from exporter.sidethread import SideThread
from exporter.snapshots import verify_snapshot

__all__ = ["ReconstructOptions", "Reconstruction", "SpanSet", "spans_from_tables", "reconstruct_snapshot",
           "snapshot_spans", "reconstruct_to_directory", "reconstruct_into", "floor_to_step",
           "STAGES"]

DEFAULT_STEP = dt.timedelta(hours=1)  # the timeline grid
STAGES = ("load snapshot", "spans", "timeline", "audit", "write outputs")


@dataclass(frozen=True)
class ReconstructOptions:
    """What to reconstruct: site name, timeline window [start, end) and step, maintenance projects.

    ``end=None``: the snapshot time floored to the step. ``snapshot_time=None``: from the
    snapshot's manifest, else the latest recorded time in its data (layout.RECORDED_TIMES).
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


def reconstruct_snapshot(snapshot_dir: Path, options: ReconstructOptions, progress: Progress | None = None,
                         outputs: OutputSet | None = None) -> Reconstruction:
    """Spans, rejects, timeline and audit of one snapshot directory; both invariants checked.
    ``outputs``: each part is handed over to it as soon as it is final, to be written meanwhile.

    Raises SnapshotError (unreadable snapshot), ConfigError (empty window) or
    InvariantViolation (rows or hours do not balance).
    """
    progress = progress or SILENT
    span_set, snapshot_time, time_source = snapshot_spans(Path(snapshot_dir), options, progress)
    end = options.end or floor_to_step(snapshot_time, options.start, options.step)
    if end <= options.start:
        raise ConfigError(f"empty timeline window: --from {options.start} is not before --to {end}")
    check_timeline_size(span_set.spans, start=options.start, end=end, step=options.step)
    if outputs is not None:
        outputs.spans(span_set.spans, span_set.rejected, span_set.leadtimes)
    with progress.stage("timeline"):
        grid = timeline_grid(span_set.spans, start=options.start, end=end, step=options.step, open_end=snapshot_time)
    if outputs is not None:
        outputs.timeline(grid)
    with progress.stage("audit"):
        # The spans' half of the hours' audit first (its transients stay off the lens's and the writes'
        # peaks), then the lens, beside timeline.parquet's write, and its families handed over at once:
        # their write runs beside the grid's half of the audit, not alone at the end (BENCHMARKS.md, session 12).
        # So a lens that fails is reported before the invariants are checked; nothing is published either way.
        counted = audit_timeline.window_span_hours(span_set.spans, start=options.start, end=end, step=options.step,
                                                   snapshot_time=snapshot_time)
        times = [options.start + k * options.step for k in range(grid_size(start=options.start, end=end, step=options.step))]
        lead_timeline = leadtime.leadtime_timeline(span_set.leadtimes)
        node_types = grid.groups.select(pl.col("site", "node_type").cast(pl.String))
        families = {**bookings.booked_ahead_families(bookings.booked_ahead(span_set.bookings, times,
                                                                           node_types=node_types)),
                    **leadtime.leadtime_family(lead_timeline)}
        if outputs is not None:
            outputs.families(families)
        # where the evidence came from, so later stages (compare) find the snapshot again
        audit = dict(span_set.audit, snapshot_time_source=time_source, snapshot_dir=str(Path(snapshot_dir).resolve()))
        audit["timeline"] = audit_timeline.timeline_accounting(
            span_set.spans, grid, start=options.start, end=end, step=options.step, snapshot_time=snapshot_time,
            counted=counted)
        auditing.check_invariants(audit)
        device_timeline = None  # built and checked here: it is small (a few devices, one resource)
        if span_set.devices is not None:
            device_timeline = devices_audit.device_timeline(span_set.devices, audit, start=options.start, end=end,
                                                            step=options.step, snapshot_time=snapshot_time)
            device_families = device_family.history_frames(device_timeline, step=options.step)
            if outputs is not None:
                outputs.families(device_families)
            families |= device_families
    rec = Reconstruction(span_set.spans, span_set.rejected, grid, audit, span_set.devices, device_timeline,
                         families=families, leadtimes=span_set.leadtimes, leadtime_timeline=lead_timeline)
    if outputs is not None:
        outputs.closing(audit=audit, devices=rec.devices, device_timeline=device_timeline,
                        leadtime_timeline=lead_timeline)
    return rec


def snapshot_spans(snapshot_dir: Path, options: ReconstructOptions,
                    progress: Progress) -> tuple[SpanSet, dt.datetime, str]:
    """Load (declared columns only) and build spans; the raw tables are freed on return.

    The snapshot's check (exporter.snapshots.verify_snapshot: the sha256 of every file, ~0.2 s CPU)
    runs in a second thread beside the loading and the spans stage, whose start leaves a core idle
    (BENCHMARKS.md, session 10): when it fails, its error is the one raised, whatever the stage did."""
    with SideThread() as side:
        check = side.submit(verify_snapshot, snapshot_dir, allow_incomplete=options.allow_incomplete)
        try:
            loaded, span_set = _loaded_spans(snapshot_dir, options, progress)
        except Exception:  # not a Ctrl-C: SideThread still waits for the check and notes its error
            problem = check.exception()  # (waits for the check)
            if problem is not None:
                raise problem from None
            raise
        warnings = check.result()
    span_set.audit["warnings"][:0] = warnings  # the snapshot's own problems come first (verify=False: the check is the only source)
    return span_set, loaded.snapshot_time, loaded.snapshot_time_source


def _loaded_spans(snapshot_dir: Path, options: ReconstructOptions,
                  progress: Progress) -> tuple[layout.LoadedSnapshot, SpanSet]:
    with progress.stage("load snapshot"):
        loaded = layout.load_snapshot(snapshot_dir, columns={source.name: source.columns for source in declared_tables()},
                                       snapshot_time=options.snapshot_time, verify=False)
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
    return loaded, span_set


def reconstruct_to_directory(snapshot_dir: Path, options: ReconstructOptions, out_dir: Path,
                             progress: Progress | None = None) -> str:
    """``reconstruct_into`` and the summary text."""
    rec = reconstruct_into(snapshot_dir, options, out_dir, progress)
    return f"{reconstruct_io.summary_text(rec.audit)}\nwritten: {out_dir}"


def reconstruct_into(snapshot_dir: Path, options: ReconstructOptions, out_dir: Path,
                     progress: Progress | None = None) -> Reconstruction:
    """``reconstruct_snapshot`` writing its output set into ``out_dir`` while it runs (published when complete)."""
    progress = progress or SILENT
    with OutputSet(out_dir) as outputs:
        rec = reconstruct_snapshot(snapshot_dir, options, progress=progress, outputs=outputs)
        with progress.stage("write outputs"):
            outputs.publish()
    return rec


def floor_to_step(when: dt.datetime, origin: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The last grid point (origin + k × step) at or before ``when``."""
    return origin + step * ((when - origin) // step)
