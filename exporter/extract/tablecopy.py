"""Copying a site's tables into a snapshot's staging directory: one parquet file per table.

Per server, every table is read in one consistent view (``tableread.ConsistentView``). Tables are
copied TABLE_WORKERS at a time, the largest first — while one table's rows are typed and written,
another's are read by the server. Those the fast reader (``fastread``, connectorx) can read are
streamed straight into their final file; the others, and those whose fast read could not be
proven equal to the view, are copied by the SQLAlchemy reader into parquet parts and joined into
one file. Both writers give the same bytes for the same rows (same row groups, same encoder), so a
table's hash does not depend on the reader.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from exporter.config import SiteConfig
from exporter.faults import fault_point
from exporter.progress import Progress, StageBar
from exporter.snapshots import file_sha256
from exporter.adapters.declared import SourceTable
from exporter.extract.connectorx_source import fast_source
from exporter.extract.fastread import FastStream
from exporter.extract.reading import read_table_fast, read_table_slow
from exporter.extract.tableread import ConsistentView, TableRead

_ROW_GROUP_ROWS = 100_000
TABLE_WORKERS = 2  # tables copied at once (a SQLAlchemy read holds the view for its whole table)


def copy_tables(site: SiteConfig, views: Mapping[str, ConsistentView],
                sources: tuple[SourceTable, ...], work_dir: Path, batch_rows: int, progress: Progress,
                fast_reads: bool = True) -> tuple[dict[str, TableRead], dict[str, dict]]:
    """Every table into ``work_dir``, read in the open ``views`` (one per URL, see
    ``tableread.ConsistentView``), TABLE_WORKERS tables at a time, the largest first (the last
    ones to finish are then small): fast where the fast reader can prove its copy, else by the
    SQLAlchemy reader in the same worker at once (it holds the view's connection for the whole
    table; the other worker's reads already in flight go on meanwhile)."""
    reads: dict[str, TableRead] = {}
    files: dict[str, dict] = {}
    with progress.stage("extract tables", total=len(sources)) as stage:
        bar = _SharedBar(stage)
        fast = {url: fast_source(view.engine, statement_seconds=site.query_timeout) if fast_reads
                else "fast reads turned off" for url, view in views.items()}
        record = threading.Lock()

        def done(source: SourceTable, read: TableRead, file_facts: dict | None) -> None:
            with record:
                reads[source.name] = read
                if file_facts:
                    files[source.name] = file_facts
                    if len(files) == 1:
                        fault_point("extract:after-first-table")
            bar.advance()

        def copy(source: SourceTable) -> None:
            view, target = views[site.url_for(source.schema)], work_dir / source.file_name
            bar.item(source.name)
            read = read_table_fast(view, fast[site.url_for(source.schema)], source, batch_rows=batch_rows, bar=bar,
                                   write_stream=lambda stream: _stream_into(stream, target), spill_dir=work_dir)
            if isinstance(read, str):
                done(source, *_copy_table_slow(view, read, source, work_dir, batch_rows, bar))
            else:
                done(source, read, _file_facts(read, source, target))

        _copy_each(copy, _largest_first(site, views, fast, sources))
    return {s.name: reads[s.name] for s in sources}, {s.name: files[s.name] for s in sources if s.name in files}


def _copy_each(copy: Callable[[SourceTable], None], order: list[SourceTable]) -> None:
    """``copy`` each table of ``order``, TABLE_WORKERS at a time. Once one fails (or Ctrl-C reaches
    this thread) no further table starts: the copies under way end, then the failure is raised."""
    queue, taking, stop = iter(order), threading.Lock(), threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with taking:
                source = next(queue, None)
            if source is None:
                return
            try:
                copy(source)
            except BaseException:
                stop.set()  # before this worker lets go: no other worker takes a table after the failure
                raise

    with ThreadPoolExecutor(max_workers=TABLE_WORKERS, thread_name_prefix="extract") as pool:
        try:
            for each in [pool.submit(worker) for _ in range(TABLE_WORKERS)]:
                each.result()
        except BaseException:
            stop.set()
            raise


def _largest_first(site: SiteConfig, views: Mapping[str, ConsistentView], fast: Mapping[str, object],
                   sources: tuple[SourceTable, ...]) -> list[SourceTable]:
    """``sources``, the largest tables first by the server's estimate of their data size, where the
    fast reader runs (MariaDB/MySQL: ``information_schema.tables``); else, or when that query fails,
    in the declared order. Only the order of work: each table's file and manifest entry do not depend on it."""
    sizes: dict[str, int] = {}
    for url, view in views.items():
        if isinstance(fast[url], str):
            continue
        wanted = {(site.databases.get(s.schema, s.schema), s.table): s.name for s in sources
                  if site.url_for(s.schema) == url}
        schemas = sorted({schema for schema, _ in wanted})
        try:
            with view.lock:
                rows = view.connection().exec_driver_sql(
                    "SELECT table_schema, table_name, data_length FROM information_schema.tables WHERE table_schema "
                    f"IN ({', '.join(['%s'] * len(schemas))})", tuple(schemas)).all()
        except (sa.exc.SQLAlchemyError, OSError):  # timed out, forbidden, lost: only the order of work is at stake,
            return list(sources)  # and each table's read reports its own trouble
        sizes.update({wanted[schema, table]: int(size or 0) for schema, table, size in rows if (schema, table) in wanted})
    return sorted(sources, key=lambda source: -sizes.get(source.name, 0))  # stable: ties keep the declared order


class _SharedBar(StageBar):
    """A stage's bar used by several threads, one call at a time."""

    def __init__(self, bar: StageBar) -> None:
        super().__init__()
        self._shared, self._lock = bar, threading.Lock()

    def item(self, text: str | None) -> None:
        with self._lock:
            self._shared.item(text)

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self._shared.advance(steps)


def _file_facts(read: TableRead, source: SourceTable, target: Path) -> dict | None:
    """The written file's facts; a table that was not copied leaves no file."""
    if not read.copied:
        target.unlink(missing_ok=True)
        return None
    if not read.rows:  # an empty file of the table's columns, whichever reader found no rows
        pl.DataFrame(schema=read.schema).write_parquet(target)
    return {"file": source.file_name, "sha256": file_sha256(target), "bytes": target.stat().st_size}


def _copy_table_slow(view: ConsistentView, reason: str, source: SourceTable, work_dir: Path, batch_rows: int,
                     bar: StageBar) -> tuple[TableRead, dict | None]:
    """Stream one table into parquet parts with the SQLAlchemy reader, then one final file."""
    parts_dir = work_dir / f".parts.{source.name}"
    parts: list[Path] = []

    def write_part(frame: pl.DataFrame) -> None:
        part = parts_dir / f"{len(parts):06d}.parquet"
        frame.write_parquet(part, statistics=False)
        parts.append(part)

    target = work_dir / source.file_name
    target.unlink(missing_ok=True)  # what a fast read that gave up wrote
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir()
    try:
        bar.item(source.name)
        read = read_table_slow(view, source, write_part, reason, batch_rows=batch_rows, bar=bar)
        if read.copied and parts:
            pl.scan_parquet(parts, schema=read.schema).sink_parquet(target, row_group_size=_ROW_GROUP_ROWS)
        return read, _file_facts(read, source, target)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def _stream_into(stream: FastStream, target: Path) -> None:
    """The fast read's frames written as the final file by the same parquet writer as the parts'
    (the bytes depend only on the rows, not on how they arrive); a failure mid-stream removes it."""
    from polars.io.plugins import register_io_source

    failure: list[BaseException] = []
    opened: list[Iterator[pl.DataFrame]] = []

    def frames(with_columns, predicate, n_rows, batch_size):
        try:
            opened.append(stream.frames())
            for frame in opened[-1]:
                yield frame if with_columns is None else frame.select(with_columns)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, outside polars' engine
            failure.append(exc)

    try:
        register_io_source(io_source=frames, schema=stream.schema).sink_parquet(target,
                                                                                row_group_size=_ROW_GROUP_ROWS)
    finally:
        for each in opened:  # a writer that stopped early: the stream's reads and spill directory end now
            each.close()
    if failure:
        target.unlink(missing_ok=True)
        raise failure[0]
