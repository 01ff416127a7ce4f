"""Reading snapshots written by ``extract`` (and plain directories of upstream archive dumps).

A snapshot directory holds ``<schema>.<table>.parquet`` files and, when written by this tool,
``manifest.json`` (fields documented in :func:`exporter.extract.manifest_for`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl

from exporter.errors import SnapshotError

MANIFEST_NAME = "manifest.json"


def read_manifest(snapshot_dir: Path) -> dict | None:
    """The parsed manifest, or None for a directory of parquet files without one (an archive dump)."""
    path = Path(snapshot_dir) / MANIFEST_NAME
    if not Path(snapshot_dir).is_dir():
        raise SnapshotError(f"snapshot {snapshot_dir} is not a directory")
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SnapshotError(f"{path}: unreadable manifest ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables"), dict):
        raise SnapshotError(f"{path}: not a snapshot manifest (no tables)")
    return manifest


def snapshot_time(manifest: dict) -> dt.datetime:
    """When the snapshot was taken (naive UTC): its ``finished_at``, the time by which every
    copied row had been observed. Later stages close open-ended spans here."""
    try:
        return dt.datetime.strptime(manifest["finished_at"], "%Y-%m-%dT%H:%M:%SZ")
    except (KeyError, TypeError, ValueError):
        raise SnapshotError("manifest has no valid finished_at") from None


def snapshot_tables(snapshot_dir: Path, *, verify: bool = False) -> dict[str, pl.LazyFrame]:
    """``{"schema.table": LazyFrame}`` for every table file in the snapshot.

    With a manifest, only tables it lists as copied are returned, and ``verify=True`` checks
    each file's sha256 against it (SnapshotError on a mismatch or a missing file).
    """
    snapshot_dir = Path(snapshot_dir)
    manifest = read_manifest(snapshot_dir)
    if manifest is None:
        return {path.name[: -len(".parquet")]: pl.scan_parquet(path)
                for path in sorted(snapshot_dir.glob("*.parquet"))}
    tables = {}
    for name, entry in sorted(manifest["tables"].items()):
        if not entry.get("file"):
            continue
        path = snapshot_dir / entry["file"]
        if not path.exists():
            raise SnapshotError(f"{path}: listed in the manifest but missing")
        if verify and file_sha256(path) != entry.get("sha256"):
            raise SnapshotError(f"{path}: content hash differs from the manifest (file changed?)")
        tables[name] = pl.scan_parquet(path)
    return tables


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
