"""Read-only extraction of a site's declared tables into an immutable, dated snapshot.

A snapshot is the directory ``<out_root>/<site>/<snapshot-id>/`` holding one
``<schema>.<table>.parquet`` per table that could be read (the naming of the upstream
chameleon-usage archives) and ``manifest.json`` (see :func:`manifest_for` for its fields). It is
written into a hidden, locked temporary directory (``.<id>.staging-*``, never taken for a snapshot;
the next extract removes those left by killed runs), the manifest last, every file synced, and
renamed into place when complete; an existing snapshot is never overwritten.

Rows are copied as stored (facts are immutable), ordered by primary key, so the same rows give
byte-identical parquet files and the same content hashes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from exporter import __version__
from exporter.config import SiteConfig
from exporter.db import masked, open_engine
from exporter.errors import ConfigError, SnapshotError
from exporter.timeutil import utc_now
from exporter.progress import SILENT, Progress
from exporter.snapshots import MANIFEST_NAME
from exporter.adapters import blazar_schema
from exporter.adapters.declared import SourceTable
from exporter.adapters.registry import declared_tables, site_tables
from exporter.extract.tablecopy import copy_tables
from exporter.extract.tableread import STATUSES, ConsistentView, TableRead, read_tables
from exporter.extract.valuetypes import dtype_name
from exporter.faults import fault_point
from exporter.publish import (disk_errors, fsync_tree, is_disk_full, publish_new_directory, remove_stale_staging,
                              staging_directory, write_text_atomically)

__all__ = ["STATUSES", "ExtractResult", "TableRead", "extract_snapshot", "grant_statements", "read_tables",
           "snapshot_id_for"]

MANIFEST_FORMAT = "openstack-usage-exporter/snapshot/1"
_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ExtractResult:
    """A written snapshot: its directory and its manifest (the parsed ``manifest.json``)."""

    snapshot_dir: Path
    manifest: dict

    @property
    def failed_required(self) -> list[str]:
        """Required tables that were not copied completely (the snapshot cannot be trusted whole)."""
        return [name for name, table in self.manifest["tables"].items()
                if not table["optional"] and table["status"] != "ok"]

    @property
    def warnings(self) -> list[str]:
        """What the snapshot cannot hold, one line each (today: a Blazar without soft delete)."""
        read = {name: [column["name"] for column in table["columns"]] for name, table in self.manifest["tables"].items()}
        missing = blazar_schema.missing_soft_delete(read)
        return [blazar_schema.soft_delete_warning(missing)] if missing else []


def snapshot_id_for(when: dt.datetime) -> str:
    """The snapshot id for a UTC time: ``20261121T230000Z``."""
    return when.strftime("%Y%m%dT%H%M%SZ")


def extract_snapshot(site: SiteConfig, out_root: Path, *, snapshot_id: str | None = None,
                     progress: Progress | None = None, batch_rows: int = 50_000,
                     sources: Iterable[SourceTable] | None = None, fast_reads: bool = True) -> ExtractResult:
    """Copy ``sources`` (default: every declared table, as the site's kind needs it) of ``site`` into a
    new snapshot directory.

    Raises DatabaseError (one clear line, no password) when a server cannot be reached or
    rejects the login, SnapshotError when the snapshot already exists; per-table problems
    (missing, forbidden, timed out) are recorded in the manifest instead. ``fast_reads=False``
    reads every table with the SQLAlchemy reader (exporter.extract.reading).
    """
    started = _utc_now()
    snapshot_id = snapshot_id or snapshot_id_for(started)
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ConfigError(f"snapshot id {snapshot_id!r} must be letters, digits, '.', '_' or '-'")
    sources = tuple(sources if sources is not None else site_tables(site.kind))
    site_dir = Path(out_root) / site.name
    final_dir = site_dir / snapshot_id
    if final_dir.exists():
        raise SnapshotError(f"snapshot {final_dir} already exists (snapshots are never overwritten)")
    engines = _engines(site, sources)
    try:
        with contextlib.ExitStack() as views_open:
            # every table of one server in one consistent snapshot, opened before anything is
            # written: a server that cannot be reached or refuses the login stops here, in one line
            views = {url: views_open.enter_context(ConsistentView(engine)) for url, engine in engines.items()}
            remove_stale_staging(site_dir)
            with disk_errors(final_dir, "extract"), staging_directory(site_dir, snapshot_id) as work_dir:
                reads, files = copy_tables(site, views, sources, work_dir, batch_rows, progress or SILENT,
                                           fast_reads)
                fault_point("extract:before-manifest")
                manifest = manifest_for(site, sources, reads, files, snapshot_id=snapshot_id, started=started,
                                        finished=_utc_now(), batch_rows=batch_rows)
                _write_manifest_last(work_dir, manifest)
                fault_point("extract:before-publish")
                _publish(work_dir, final_dir)
    finally:
        for engine in engines.values():
            engine.dispose()
    return ExtractResult(final_dir, manifest)


def _engines(site: SiteConfig, sources: tuple[SourceTable, ...]) -> dict[str, object]:
    """One read-only engine per distinct URL the sources need."""
    urls = {site.url_for(schema) for schema in {s.schema for s in sources}}
    return {url: open_engine(url, site.databases, read_timeout=site.query_timeout) for url in sorted(urls)}


def manifest_for(site: SiteConfig, sources: tuple[SourceTable, ...], reads: Mapping[str, TableRead],
                 files: Mapping[str, dict], *, snapshot_id: str, started: dt.datetime, finished: dt.datetime,
                 batch_rows: int) -> dict:
    """The manifest: site, masked source URLs, tool version, UTC times and one entry per table.

    Per table: status, optional, rows, file, sha256 (of the parquet file), columns (name,
    source_type, dtype), missing_columns, invalid_values (column -> values stored as null), error,
    read_view (tables with one number were read in one consistent snapshot of their server).
    """
    tables = {}
    for source in sources:
        read = reads[source.name]
        tables[source.name] = {
            "status": read.status,
            "optional": source.optional,
            "rows": read.rows if read.copied else None,
            **(files.get(source.name) or {"file": None, "sha256": None, "bytes": None}),
            "columns": [{"name": c.name, "source_type": c.source_type, "dtype": dtype_name(c.dtype)} for c in read.columns],
            "missing_columns": list(read.missing_columns),
            "invalid_values": dict(read.invalid_values),
            "error": read.error,
            "read_view": read.view,  # tables with the same number were read in one consistent snapshot
            "reader": read.reader,
            "reader_fallback": read.fallback,
        }
    schemas = sorted({s.schema for s in sources})
    return {
        "format": MANIFEST_FORMAT,
        "site": site.name,
        "display_name": site.display_name,
        "snapshot_id": snapshot_id,
        "tool": {"name": "openstack-usage-exporter", "version": __version__},
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "sources": {schema: masked(site.url_for(schema)) for schema in schemas},
        "databases": {schema: site.databases.get(schema, schema) for schema in schemas},
        "batch_rows": batch_rows,
        "complete": all(t["status"] == "ok" for t in tables.values() if not t["optional"]),
        "tables": tables,
    }


def grant_statements(user: str, host: str, databases: Mapping[str, str] | None = None) -> list[str]:
    """``GRANT SELECT ON `db`.`table` TO 'user'@'host'`` for exactly the declared tables.

    Required tables come first, then optional ones (a GRANT on a table that does not exist
    fails on MySQL/MariaDB; those statements may be skipped).
    """
    if not user or not host:
        raise ConfigError("grants need a user and a host")
    databases = databases or {}
    account = f"{_sql_string(user)}@{_sql_string(host)}"
    ordered = sorted(declared_tables(), key=lambda s: s.optional)
    return [f"GRANT SELECT ON {_identifier(databases.get(s.schema, s.schema))}.{_identifier(s.table)} TO {account}"
            for s in ordered]


def _identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _write_manifest_last(work_dir: Path, manifest: dict) -> None:
    """The manifest is the completion record: written once every table file is, atomically, then
    every file and directory is synced, so the rename that publishes the snapshot comes last."""
    write_text_atomically(work_dir / MANIFEST_NAME, _json(manifest))
    fsync_tree(work_dir)


def _publish(work_dir: Path, final_dir: Path) -> None:
    """Rename the finished temporary directory into place; never replace an existing snapshot."""
    if final_dir.exists():
        raise SnapshotError(f"snapshot {final_dir} already exists (snapshots are never overwritten)")
    try:
        work_dir.chmod(0o755)  # mkdtemp made it private; a finished snapshot is ordinary data
        publish_new_directory(work_dir, final_dir)
    except OSError as err:
        if is_disk_full(err):
            raise
        raise SnapshotError(f"cannot move snapshot into {final_dir}: {err.strerror}") from None


def _utc_now() -> dt.datetime:
    return utc_now().replace(microsecond=0)  # the manifest records whole seconds


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
