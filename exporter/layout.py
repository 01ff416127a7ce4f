"""The on-disk layout of snapshots and outputs: the module that knows paths and file names.

A snapshot directory ``<data_dir>/<site>/<snapshot-id>/`` holds ``<schema>.<table>.parquet``
files and, when written by ``extract``, ``manifest.json`` (parsed and checked by
exporter.snapshots); plain directories of upstream archive dumps have no manifest. Reconstruct
writes spans.parquet, rejected.parquet, timeline.parquet and audit.json into its output
directory; ``run`` puts that under ``<data_dir>/<site>/out/<snapshot-id>/``.

Which snapshot may be used (complete, unaltered, newest) is exporter.snapshots; how outputs are
replaced as one set is exporter.publish.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.errors import SnapshotError, TimelineError
from exporter.snapshots import altered_files, manifest_time, read_manifest, verify_snapshot

SPANS_FILE = "spans.parquet"
REJECTED_FILE = "rejected.parquet"
TIMELINE_FILE = "timeline.parquet"
AUDIT_FILE = "audit.json"
DEVICE_SPANS_FILE = "device_spans.parquet"  # edge sites only: device spans (SPAN_SCHEMA)
DEVICE_TIMELINE_FILE = "device_timeline.parquet"  # edge sites only: device leaves (TIMELINE_SCHEMA, nodes)
LEADTIME_FILE = "leadtime.parquet"  # one row per lease (exporter.reconstruct.leadtime)
LEADTIME_TIMELINE_FILE = "leadtime_timeline.parquet"  # daily lead-time statistics per site
RUN_OUT_DIR = "out"  # <data_dir>/<site>/out/<snapshot-id>/{timeline,backfill}
TIMELINE_DIR = "timeline"
BACKFILL_DIR = "backfill"
OPENMETRICS_DIR = "openmetrics"  # inside a backfill output directory, with:
BLOCKS_DIR = "blocks"
BACKFILL_MANIFEST = "backfill.json"
FAMILIES_DIR = "families"  # in a reconstruction: <name>.parquet per extra series family (exporter.metrics)


def table_files(snapshot_dir: Path, manifest: dict | None) -> dict[str, Path]:
    """``{"schema.table": path}`` of every table file in the snapshot.

    With a manifest, only tables it lists as copied (SnapshotError when one is missing; hashes
    are checked by :func:`verify_snapshot`). Without one, every ``*.parquet`` file.
    """
    snapshot_dir = Path(snapshot_dir)
    if manifest is None:
        return {path.name[: -len(".parquet")]: path for path in sorted(snapshot_dir.glob("*.parquet"))}
    files = {}
    for name, entry in sorted(manifest["tables"].items()):
        if not entry.get("file"):
            continue
        path = snapshot_dir / entry["file"]
        if not path.exists():
            raise SnapshotError(f"{path}: listed in the manifest but missing")
        files[name] = path
    return files


def scan_tables(snapshot_dir: Path, *, verify: bool = False) -> dict[str, pl.LazyFrame]:
    """``{"schema.table": LazyFrame}`` of every table file (:func:`table_files`), all columns;
    ``verify=True`` first checks every file's sha256 against the manifest (SnapshotError)."""
    manifest = read_manifest(snapshot_dir)
    altered = altered_files(snapshot_dir, manifest) if verify and manifest is not None else []
    if altered:
        raise SnapshotError(f"snapshot {snapshot_dir}: {altered[0]}")
    return {name: pl.scan_parquet(path) for name, path in table_files(snapshot_dir, manifest).items()}


def run_out_dir(data_dir: Path, site: str, snapshot_dir: Path) -> Path:
    """Where ``run`` writes a snapshot's timeline/ and backfill/ by default."""
    return Path(data_dir) / site / RUN_OUT_DIR / Path(snapshot_dir).name


@dataclass(frozen=True)
class LoadedSnapshot:
    tables: dict[str, pl.LazyFrame]  # parquet scans of the wanted columns (read when collected)
    snapshot_time: dt.datetime
    snapshot_time_source: str  # option | manifest | max_timestamp
    warnings: tuple[str, ...] = ()  # about the snapshot itself (no manifest, used although incomplete)


def load_snapshot(snapshot_dir: Path, *, columns: Mapping[str, Sequence[str]], essential: Sequence[str] = (),
                  snapshot_time: dt.datetime | None = None, allow_incomplete: bool = False,
                  verify: bool = True) -> LoadedSnapshot:
    """The tables of ``columns`` ({name: wanted columns}) found in ``snapshot_dir`` (lazy scans of
    the wanted columns present) and the snapshot time.

    Each file's parquet footer is read now, so a truncated or non-parquet file fails here.
    Snapshot time: the given one, else the manifest's, else the latest recorded time in the data
    (``RECORDED_TIMES``: not a lease's planned start or end).
    Raises SnapshotError for a missing directory, an unreadable file, a missing ``essential`` table,
    or (unless ``allow_incomplete``) a snapshot that is incomplete or differs from its manifest's
    hashes (:func:`verify_snapshot`). ``verify=False``: the caller runs that check itself (its
    warnings are then not in the result), e.g. beside the work that reads the tables.
    """
    snapshot_dir = Path(snapshot_dir)
    warnings = tuple(verify_snapshot(snapshot_dir, allow_incomplete=allow_incomplete)) if verify else ()
    manifest = read_manifest(snapshot_dir)
    files = table_files(snapshot_dir, manifest)
    missing = [name for name in essential if name not in files]
    if missing:
        raise SnapshotError(f"snapshot {snapshot_dir} lacks {', '.join(missing)}; nothing can be reconstructed")
    tables = {name: _scan_columns(files[name], wanted) for name, wanted in columns.items() if name in files}
    if snapshot_time is not None:
        return LoadedSnapshot(tables, snapshot_time, "option", warnings)
    if manifest is not None:
        return LoadedSnapshot(tables, manifest_time(manifest), "manifest", warnings)
    return LoadedSnapshot(tables, _latest_timestamp(tables, snapshot_dir), "max_timestamp", warnings)


def _scan_columns(path: Path, columns: Sequence[str]) -> pl.LazyFrame:
    try:
        present = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise SnapshotError(f"{path}: unreadable parquet file ({first_line(err)})") from None
    return pl.scan_parquet(path).select([c for c in columns if c in present])


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name if empty)."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


# Columns that record when something happened (a row written, changed or deleted, an instance
# launched or terminated, an action or event, an audit row). Plans are left out: a lease's
# start_date/end_date may lie after the dump, and the snapshot time must not.
RECORDED_TIMES = frozenset({"created_at", "updated_at", "deleted_at", "launched_at", "terminated_at",
                            "start_time", "finish_time", "audit_event_time", "audit_changed_at"})
# The time columns the adapters read that are plans (tests/adapters/test_recorded_times.py: every
# adapter time column is in one of the two sets).
PLANNED_TIMES = frozenset({"start_date", "end_date"})


def _latest_timestamp(tables: dict[str, pl.LazyFrame], snapshot_dir: Path) -> dt.datetime:
    """A snapshot without manifest was taken no earlier than the latest recorded time in it."""
    latest = None
    for frame in tables.values():
        stamps = [name for name, dtype in frame.collect_schema().items()
                  if name in RECORDED_TIMES and isinstance(dtype, pl.Datetime)]
        if not stamps:
            continue
        value = frame.select(pl.max_horizontal(pl.col(stamps).max())).collect().item()
        if value is not None and (latest is None or value > latest):
            latest = value.replace(tzinfo=None)
    if latest is None:
        raise SnapshotError(f"snapshot {snapshot_dir} has no manifest and no recorded times; pass --snapshot-time")
    return latest


def read_timeline(timeline_dir: Path) -> pl.DataFrame:
    """``<timeline_dir>/timeline.parquet`` (or the file itself), or a TimelineError."""
    path = Path(timeline_dir)
    path = path / TIMELINE_FILE if path.is_dir() else path
    if not path.exists():
        raise TimelineError(f"no timeline at {path} (write one with `usage-exporter reconstruct`)")
    try:
        return pl.read_parquet(path)
    except Exception as err:  # polars raises several unrelated types for a bad file
        raise TimelineError(f"cannot read {path}: {str(err).splitlines()[0][:200]}") from None


def read_device_timeline(timeline_dir: Path) -> pl.DataFrame | None:
    """An edge site's ``device_timeline.parquet`` beside its timeline (None when there is none)."""
    path = Path(timeline_dir)
    path = (path if path.is_dir() else path.parent) / DEVICE_TIMELINE_FILE
    if not path.exists():
        return None
    return read_timeline(path)


def family_file(directory: Path, name: str) -> Path:
    """Where a reconstruction keeps the long frame of extra series family ``name``."""
    return Path(directory) / FAMILIES_DIR / f"{name}.parquet"


def read_families(timeline_dir: Path, declared: Sequence[str]) -> dict[str, pl.DataFrame]:
    """The extra series families stored beside a timeline (``families/<name>.parquet``), by name.

    ``timeline_dir`` as for :func:`read_timeline`. No ``families/`` directory: none. A file whose
    name is not ``declared`` (written by another version) or that cannot be read: TimelineError.
    """
    base = Path(timeline_dir)
    base = base if base.is_dir() else base.parent
    files = sorted((base / FAMILIES_DIR).glob("*.parquet")) if (base / FAMILIES_DIR).is_dir() else []
    unknown = [path.name for path in files if path.stem not in declared]
    if unknown:
        raise TimelineError(f"{base / FAMILIES_DIR} holds undeclared series famil(ies) {', '.join(unknown)} "
                            "(written by another version of usage-exporter?)")
    frames = {}
    for path in files:
        try:
            frames[path.stem] = pl.read_parquet(path)
        except Exception as err:  # polars raises several unrelated types for a bad file
            raise TimelineError(f"cannot read {path}: {first_line(err)[:200]}") from None
    return frames


def reconstruction_dir(out: Path) -> Path:
    """The directory holding a reconstruction's outputs: ``out`` itself (``reconstruct --out``),
    or ``out/timeline`` when that holds them (``run``'s output directory)."""
    out = Path(out)
    nested = out / TIMELINE_DIR
    if not (out / TIMELINE_FILE).exists() and (nested / TIMELINE_FILE).exists():
        return nested
    return out


def read_audit(reconstruction: Path) -> dict:
    """``audit.json`` of a reconstruction directory, or a TimelineError."""
    path = Path(reconstruction) / AUDIT_FILE
    if not path.exists():
        raise TimelineError(f"no {AUDIT_FILE} in {reconstruction} (is it a `usage-exporter reconstruct` output?)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TimelineError(f"cannot read {path}: {first_line(err)[:200]}") from None
