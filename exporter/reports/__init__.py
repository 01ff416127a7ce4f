"""Reports over a reconstruction's outputs: the legacy comparison (``compare``), KPI tables per
calendar period (``report``, also into a SQL table; an edge site's devices in a table of their
own) and the coverage table (``report --coverage``). Each reads ``timeline.parquet`` /
``device_timeline.parquet`` / ``audit.json`` / ``rejected.parquet`` of one reconstruction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.config import Config
from exporter.errors import SnapshotError, TimelineError
from exporter.layout import REJECTED_FILE, read_device_timeline
from exporter.reports import coverage as cov
from exporter.reports import kpi
from exporter.reports import legacy as leg
from exporter.reports.inputs import load_reconstruction
from exporter.reports.outputs import write_table

KPI_MARKDOWN = ["site", "period_start", "node_type", "complete", *[f"node_hours_{level}" for level in (
    "total", "reservable", "committed", "maintenance", "occupied", "active", "stopped", "pool_ondemand",
    "pool_unknown")], *kpi.RATIOS]
DEVICE_KPI_MARKDOWN = ["site", "period_start", kpi.DEVICE_TYPE, "complete", *[f"device_hours_{level}" for level in (
    "total", "reservable", "committed", "maintenance", "occupied", "active", "stopped", "idle", "available")],
    *kpi.RATIOS]


@dataclass(frozen=True)
class CompareResult:
    nothing_to_compare: str | None  # why there is nothing to compare, else None
    paths: tuple[Path, ...] = ()
    summary: pl.DataFrame | None = None


def run_compare(out: str | Path, *, snapshot_dir: str | Path | None = None, out_dir: str | Path | None = None,
                config: Config | None = None, figure: bool = True) -> CompareResult:
    """comparison.parquet/.csv (+ comparison.png) in ``out_dir`` (default: the timeline directory)."""
    rec = load_reconstruction(out)
    snapshot = Path(snapshot_dir) if snapshot_dir else rec.snapshot_dir
    if snapshot is None:
        raise TimelineError(f"{rec.directory}/audit.json does not record its snapshot; pass --snapshot DIR")
    legacy = _legacy_table(snapshot)
    if isinstance(legacy, str):
        return CompareResult(nothing_to_compare=legacy)
    site = str(rec.audit.get("site") or rec.timeline["site"].cast(pl.String)[0])
    leaves = leg.daily_leaves(rec.timeline, step_seconds=rec.step_seconds)
    evidence = leg.evidence(_rejected(rec.directory), leaves)
    table = leg.compare(leg.legacy_levels(legacy, site=site), leg.reconstructed_levels(leaves), evidence)
    if table.height == 0:
        return CompareResult(nothing_to_compare=f"no legacy day falls inside the reconstructed history ({snapshot})")
    target = Path(out_dir) if out_dir else rec.directory
    paths = write_table(table, target, "comparison")
    if figure:
        from exporter.reports.figures import comparison_figure
        detected = {site: str((rec.audit.get("hypervisors") or {}).get("site", "unknown"))}
        comparison_figure(table, config=config, detected=detected).savefig(target / "comparison.png", dpi=100,
                                                                          metadata={"Software": None})
        paths.append(target / "comparison.png")
    return CompareResult(None, tuple(paths), leg.summary(table))


def _legacy_table(snapshot: Path) -> pl.DataFrame | str:
    from exporter.layout import scan_tables

    tables = scan_tables(snapshot)
    if leg.LEGACY_TABLE not in tables:
        return f"nothing to compare: snapshot {snapshot} has no {leg.LEGACY_TABLE}"
    try:
        legacy = tables[leg.LEGACY_TABLE].collect()
    except pl.exceptions.PolarsError as err:
        raise SnapshotError(f"{snapshot}: unreadable {leg.LEGACY_TABLE} ({str(err).splitlines()[0][:200]})") from None
    missing = {"date", "node_type", *[c for cols in leg.LEGACY_LEVELS.values() for c in cols]} - set(legacy.columns)
    if missing:
        raise SnapshotError(f"{snapshot}: {leg.LEGACY_TABLE} lacks column(s) {', '.join(sorted(missing))}")
    if legacy.height == 0:
        return f"nothing to compare: {leg.LEGACY_TABLE} in {snapshot} has no rows"
    return legacy


def _rejected(directory: Path) -> pl.DataFrame:
    path = directory / REJECTED_FILE
    if not path.exists():
        raise TimelineError(f"no {REJECTED_FILE} in {directory} (is it a `usage-exporter reconstruct` output?)")
    return pl.read_parquet(path, columns=["level", "start", "end", "hours", "rejection_reason"])


@dataclass(frozen=True)
class ReportResult:
    table: pl.DataFrame
    paths: tuple[Path, ...]
    sql_rows: dict[str, int] | None = None  # SQL table name -> rows written
    devices: pl.DataFrame | None = None  # an edge site's device KPI table


def run_report(out: str | Path, *, period: str, out_dir: str | Path | None = None, db_url: str | None = None,
               table_name: str | None = None) -> ReportResult:
    """report-<period>.parquet/.csv/.md in ``out_dir`` (default: the timeline directory), and with
    ``db_url`` + ``table_name`` the same rows into that SQL table (reported periods replaced). An
    edge site's devices: report-<period>-devices.* and the SQL table ``<table_name>_devices``."""
    rec = load_reconstruction(out)
    table = kpi.kpi_table(rec.timeline, period=period, step_seconds=rec.step_seconds)
    target = Path(out_dir) if out_dir else rec.directory
    device_timeline = read_device_timeline(rec.directory)
    no_hosts = "No hosts in this site's timeline" + (
        "" if device_timeline is None else f": its usage is its devices, in report-{period}-devices.md") + "."
    paths = write_table(table, target, f"report-{period}", markdown_columns=KPI_MARKDOWN,
                        title=f"Node-hours per {period}", when_empty=no_hosts)
    devices = None if device_timeline is None else kpi.device_kpi_table(device_timeline, period=period,
                                                                       step_seconds=rec.step_seconds)
    if devices is not None:
        paths += write_table(devices, target, f"report-{period}-devices", markdown_columns=DEVICE_KPI_MARKDOWN,
                             title=f"Device-hours per {period}")
    rows = None
    if db_url:
        from exporter.reports.sqlsink import DEVICE_KEY, write_sql
        name = table_name or "usage_kpi"
        rows = {name: write_sql(table, db_url, name)}
        if devices is not None:
            rows[f"{name}_devices"] = write_sql(devices, db_url, f"{name}_devices", key=DEVICE_KEY)
    return ReportResult(table, tuple(paths), rows, devices)


def run_coverage(out: str | Path, *, out_dir: str | Path | None = None) -> ReportResult:
    """coverage.parquet/.csv (every book entry) and coverage.md (per year x level)."""
    rec = load_reconstruction(out)
    long = cov.coverage_long(rec.audit, rec.timeline, step_seconds=rec.step_seconds,
                             device_timeline=read_device_timeline(rec.directory))
    target = Path(out_dir) if out_dir else rec.directory
    summary = cov.coverage_summary(long)
    paths = write_table(long, target, "coverage")
    paths += write_table(summary, target, "coverage-summary", markdown_columns=summary.columns,
                         title="Coverage: span-hours per year and level")
    return ReportResult(summary, tuple(paths))
