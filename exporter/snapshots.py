"""Which snapshot may be used: its ``manifest.json`` (fields documented in
:func:`exporter.extract.copy.manifest_for`) parsed, and what it vouches for checked.

:func:`verify_snapshot`: complete and unaltered (the manifest's sha256 of every file).
:func:`newest_snapshot`: never a hidden temporary directory of a running or killed extract, never
an incomplete snapshot. Where the files are and how they are read is exporter.layout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def manifest_time(manifest: dict) -> dt.datetime:
    """When the snapshot was taken (naive UTC): its ``finished_at``, the time by which every
    copied row had been observed. Later stages close open-ended spans here."""
    try:
        return dt.datetime.strptime(manifest["finished_at"], "%Y-%m-%dT%H:%M:%SZ")
    except (KeyError, TypeError, ValueError):
        raise SnapshotError("manifest has no valid finished_at") from None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (hashlib's own read loop, without a Python call per chunk)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_snapshot(snapshot_dir: Path, *, allow_incomplete: bool = False) -> list[str]:
    """Check that a snapshot is complete and unaltered before it is used; returns warnings.

    - No manifest (a dump made by other tools): accepted, with a warning that its integrity
      cannot be checked.
    - A required table not copied (extract failed on it), a listed file missing, or a file whose
      sha256 differs from the manifest: SnapshotError (one line), or with ``allow_incomplete``
      a warning naming the problem.
    """
    snapshot_dir = Path(snapshot_dir)
    manifest = read_manifest(snapshot_dir)
    if manifest is None:
        return [f"snapshot {snapshot_dir} has no {MANIFEST_NAME} (not written by extract): "
                "its completeness and integrity cannot be checked"]
    problems = incomplete_tables(manifest) + altered_files(snapshot_dir, manifest)
    if problems and not allow_incomplete:
        raise SnapshotError(f"snapshot {snapshot_dir} is incomplete or altered: {problems[0]}"
                            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                            + "; extract a new one, or pass --allow-incomplete to use it anyway")
    return [f"snapshot used although incomplete or altered (--allow-incomplete): {p}" for p in problems]


def incomplete_tables(manifest: dict) -> list[str]:
    """Required tables the extract did not copy, with the status it recorded."""
    return [f"required table {name} was not copied ({entry.get('status')}"
            + (f": {entry['error']}" if entry.get("error") else "") + ")"
            for name, entry in sorted(manifest["tables"].items())
            if not entry.get("optional") and entry.get("status") != "ok"]


def altered_files(snapshot_dir: Path, manifest: dict) -> list[str]:
    """Listed table files that are missing or whose sha256 differs (hashed in parallel threads)."""
    listed = [(name, entry) for name, entry in sorted(manifest["tables"].items()) if entry.get("file")]
    paths = [Path(snapshot_dir) / entry["file"] for _, entry in listed]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        digests = list(pool.map(_sha256_or_none, paths))
    problems = []
    for (name, entry), path, digest in zip(listed, paths, digests):
        if digest is None:
            problems.append(f"{path.name} is listed in the manifest but missing")
        elif digest != entry.get("sha256"):
            problems.append(f"{path.name} differs from the sha256 in the manifest")
    return problems


def _sha256_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


def is_snapshot_candidate(path: Path, *, allow_incomplete: bool = False) -> bool:
    """A directory ``newest_snapshot`` may pick: not hidden (extract's temporary directories are),
    with a manifest that says complete (any manifest with ``allow_incomplete``), or a dump of parquet
    files without one."""
    if path.name.startswith(".") or not path.is_dir():
        return False
    try:
        manifest = read_manifest(path)
    except SnapshotError:
        return False
    if manifest is None:
        return any(path.glob("*.parquet"))
    return allow_incomplete or (manifest.get("complete") is True and not incomplete_tables(manifest))


def newest_snapshot(site_dir: Path, *, allow_incomplete: bool = False) -> Path:
    """The last (by name = by time) usable snapshot directory under ``site_dir``."""
    candidates = sorted(p for p in Path(site_dir).glob("*") if is_snapshot_candidate(p, allow_incomplete=allow_incomplete))
    if not candidates:
        raise SnapshotError(f"no complete snapshot under {site_dir} (run usage-exporter extract first)")
    return candidates[-1]
