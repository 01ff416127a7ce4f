"""Writing a reconstruction's deterministic outputs, and its printed summary.

Output files (names: exporter.layout; published as one set by exporter.reconstruct.output_set):
spans.parquet, rejected.parquet, timeline.parquet (sorted, fixed column order, fixed parquet
settings, so the same input gives byte-identical files), audit.json,
families/<name>.parquet per extra series family (exporter.metrics), sorted by labels and time, and
leadtime.parquet / leadtime_timeline.parquet (exporter.reconstruct.leadtime, already sorted).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import polars as pl

from exporter import layout
from exporter.columns import REJECT_SCHEMA, SPAN_SCHEMA, TIMELINE_SCHEMA
from exporter.faults import fault_point
from exporter.familyframe import checked_family_frames
from exporter.metrics import EXTRA_FAMILIES
from exporter.reconstruct.audit import audit_json
from exporter.reconstruct.timeline import TimelineGrid

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "statistics": True, "row_group_size": 262_144}
# Min/max of five dictionary label columns over tens of millions of rows cost a third of the
# timeline's write (measured 0.86 -> 0.59 s on 31.6 M rows); a filtered scan of the file without
# them is as fast in practice (one month out of ten years: 0.010 vs 0.017 s).
TIMELINE_PARQUET_OPTIONS = {**PARQUET_OPTIONS, "statistics": False}


OUTPUT_FILES = (layout.SPANS_FILE, layout.REJECTED_FILE, layout.TIMELINE_FILE, layout.AUDIT_FILE,
                layout.DEVICE_SPANS_FILE, layout.DEVICE_TIMELINE_FILE, layout.FAMILIES_DIR, layout.LEADTIME_FILE,
                layout.LEADTIME_TIMELINE_FILE)


def write_frame(frame: pl.DataFrame, path: Path, options: dict = PARQUET_OPTIONS) -> None:
    """Write ``frame`` with fixed parquet settings (into a staging directory: exporter.reconstruct.output_set)."""
    frame.write_parquet(path, **options)


def write_parts(parts: Iterable[pl.DataFrame], schema: Mapping[str, pl.DataType], path: Path,
                options: dict = PARQUET_OPTIONS) -> None:
    """Write the frames ``parts`` (in ``schema``) one after another as one parquet file, taking one
    part at a time. The file is byte for byte what ``write_frame`` of their concatenation writes:
    polars' parquet bytes depend on the rows and the settings, not on how the rows arrive."""
    from polars.io.plugins import register_io_source

    failure: list[BaseException] = []

    def frames(with_columns, predicate, n_rows, batch_size) -> Iterator[pl.DataFrame]:
        try:
            for part in parts:
                yield part if with_columns is None else part.select(with_columns)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, outside polars' engine
            failure.append(exc)

    register_io_source(io_source=frames, schema=dict(schema)).sink_parquet(path, **options)
    if failure:
        path.unlink(missing_ok=True)
        raise failure[0]


def write_timeline(grid: TimelineGrid, path: Path) -> None:
    """timeline.parquet straight from the grid, part by part (the long frame is never whole)."""
    if grid.leaves.height == 0:  # an empty file's bytes are the in-memory writer's
        write_frame(grid.long(), path, TIMELINE_PARQUET_OPTIONS)
    else:
        write_parts(grid.long_parts(), TIMELINE_SCHEMA, path, TIMELINE_PARQUET_OPTIONS)


def write_span_files(directory: Path, spans: pl.DataFrame, rejected: pl.DataFrame,
                     leadtimes: pl.DataFrame | None = None) -> None:
    """spans.parquet and rejected.parquet in their schemas' column order, and the lead times."""
    write_frame(spans.select(list(SPAN_SCHEMA)), directory / layout.SPANS_FILE)
    fault_point("reconstruct:after-spans")
    write_frame(rejected.select(list(REJECT_SCHEMA)), directory / layout.REJECTED_FILE)
    if leadtimes is not None:
        write_frame(leadtimes, directory / layout.LEADTIME_FILE)


def write_closing_files(directory: Path, *, audit: dict, devices: pl.DataFrame | None = None,
                        device_timeline: pl.DataFrame | None = None,
                        leadtime_timeline: pl.DataFrame | None = None) -> None:
    """audit.json (sorted keys), an edge site's device_spans/device_timeline, the lead-time timeline."""
    if devices is not None and device_timeline is not None:
        write_frame(devices.select(list(SPAN_SCHEMA)), directory / layout.DEVICE_SPANS_FILE)
        write_frame(device_timeline.select(list(TIMELINE_SCHEMA)), directory / layout.DEVICE_TIMELINE_FILE,
                    TIMELINE_PARQUET_OPTIONS)
    (directory / layout.AUDIT_FILE).write_text(audit_json(audit))
    if leadtime_timeline is not None:
        write_frame(leadtime_timeline, directory / layout.LEADTIME_TIMELINE_FILE)


def write_families(directory: Path, families: Mapping[str, pl.DataFrame]) -> None:
    """``families/<name>.parquet`` for each declared family given (none: no directory)."""
    declared = {family.name: family for family in EXTRA_FAMILIES}
    unknown = sorted(set(families) - set(declared))
    if unknown:
        raise ValueError(f"series famil(ies) {', '.join(unknown)} are not declared in exporter.metrics")
    names = sorted(families)
    checked = checked_family_frames((declared[name], families[name]) for name in names)
    for name, frame in zip(names, checked):  # one checked frame at a time
        path = layout.family_file(directory, name)
        path.parent.mkdir(exist_ok=True)
        write_frame(frame, path)


def summary_text(audit: dict) -> str:
    """A short human summary: rows and hours per source, rejections per reason, checks."""
    lines = [f"site {audit['site']}: snapshot {audit['snapshot_time']}"]
    lines.append(f"{'level/source':<48} {'rows in':>9} {'used':>9} {'rejected':>9} "
                 f"{'hours in':>14} {'counted':>14} {'clipped':>12} {'rejected':>12}")
    for e in audit["sources"]:
        lines.append(f"{e['level'] + '/' + e['source_table']:<48} {e['rows_in']:>9} {e['rows_used']:>9} "
                     f"{e['rows_rejected']:>9} {e['hours_in']:>14.1f} {e['hours_counted']:>14.1f} "
                     f"{e['hours_clipped']:>12.1f} {e['hours_rejected']:>12.1f}")
    reasons: dict[str, int] = {}
    for e in audit["rejected"]:
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + e["rows"]
    if reasons:
        lines.append("rejected rows by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    lines.append(f"total host-hours evidenced only by Blazar: {audit['blazar_only_total_hours']:.1f}")
    if "blazar_history" in audit:
        history = audit["blazar_history"]
        how = (f"from {history['derived_from']}" if history["decided_by"] == "data" and history["derived_from"]
               else history["decided_by"])
        lines.append(f"Blazar host history complete since: {history['complete_since'] or 'never'} ({how})")
    if audit.get("ondemand_hours_outside_total"):
        lines.append(f"on-demand instance-hours on hosts without total evidence: "
                     f"{audit['ondemand_hours_outside_total']:.1f} (shown as negative on-demand available)")
    conflicts = audit.get("conflicts") or {}
    if conflicts.get("spans"):
        lines.append(f"conflict spans (duplicate Blazar host rows, counted once): {conflicts['spans']}, "
                     f"{conflicts['hours']:.1f} host-hours on {len(conflicts['hours_by_host'])} host(s)")
    orphans = (audit.get("services") or {}).get("orphan_hosts")
    if orphans:
        lines.append(f"nova-compute services without a compute node (not hosts): {', '.join(orphans)}")
    if "timeline" in audit:
        tl = audit["timeline"]
        lines.append(f"timeline {tl['start']} .. {tl['end']} step {tl['step_seconds']}s: {tl['rows']} rows, "
                     f"{tl['negative_leaves']} negative leaf values")
        if "pools" in tl:
            lines.append("node-hours per pool: " + ", ".join(f"{pool} {hours:,.1f}"
                                                            for pool, hours in tl["pools"]["node_hours"].items()))
            if tl["pools"]["unknown_node_hours_by_year"]:
                lines.append("unknown pool (no evidence decides) node-hours by year: " + ", ".join(
                    f"{year} {hours:,.1f}" for year, hours in tl["pools"]["unknown_node_hours_by_year"].items()))
        if tl.get("node_hours_inside_maintenance"):
            lines.append(f"instance node-hours inside maintenance leases (counted as maintenance, not active): "
                         f"{tl['node_hours_inside_maintenance']:.1f}")
    for warning in audit["warnings"]:
        lines.append(f"warning: {warning}")
    if "devices" in audit:
        lines.extend(device_summary(audit["devices"]))
    lines.append("invariants: rows and hours balance for every source; timeline conserves span-hours")
    return "\n".join(lines)


def _retired_line(retired: dict) -> str:
    bound = retired.get("lost_hours_at_most")
    return (f"devices retired without a row, counted from their allocations (model unknown): "
            f"{retired.get('devices', 0)}, {retired.get('counted_hours', 0.0):.1f} device-hours; lost at most "
            + ("unbounded (history never complete)" if bound is None else f"{bound:.1f}"))


def device_summary(devices: dict) -> list[str]:
    """An edge site's device lines: the device timeline and what the data cannot give back."""
    timeline = devices.get("timeline", {})
    since = devices.get("history_complete_since") or "never (no device row was ever soft-deleted)"
    if devices.get("history_decided_by") == "config":
        since = (f"{devices['history_complete_since'] or 'never'} (configured; the data says "
                 f"{devices.get('history_derived_since') or 'never'})")
    return [f"devices: {devices['devices_seen']} seen; device timeline {timeline.get('rows', 0)} rows, "
            f"{timeline.get('negative_leaves', 0)} negative leaf values",
            f"device history complete since: {since} (retired devices before it may have no row)",
            _retired_line(devices.get("retired_without_row") or {}),
            f"committed device-hours of reservations with no container row (Zun hard deletes or idle): "
            f"{devices['committed_hours_without_container']:.1f}",
            f"occupied device-hours of multi-device reservations (device of a container unknown): "
            f"{devices['multi_device_occupied_hours']:.1f}"]
