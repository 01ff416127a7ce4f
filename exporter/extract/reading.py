"""Reading a table with the fastest reader that gives the consistent view's content.

``read_table_best`` tries ``fastread`` (connectorx, MariaDB/MySQL) and falls back to the
SQLAlchemy reader (``tableread``) where the fast one cannot run or cannot prove its result; the
TableRead says which reader read it (``reader``) and why the fast one did not (``fallback``).
``extract`` streams tables into parquet with it; the live exporter's full reloads read into memory
with ``read_tables_fast``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from exporter.errors import DatabaseError
from exporter.progress import SILENT, Progress, StageBar
from exporter.adapters.declared import SourceTable
from exporter.extract.connectorx_source import FastReadUnusable, FastSource, fast_source
from exporter.extract.fastread import FastStream
from exporter.extract.tableread import ConsistentView, TableRead, failed_reads, read_table

Sink = Callable[[pl.DataFrame], None]


def read_table_best(view: ConsistentView, fast: FastSource | str, source: SourceTable, new_sink: Callable[[], Sink],
                    *, batch_rows: int = 50_000, bar: StageBar | None = None,
                    write_stream: Callable[[FastStream], None] | None = None) -> TableRead:
    """Read ``source`` in ``view``: fast where possible (``fast`` is a FastSource, or the reason
    there is none), else into a sink from ``new_sink()``. The fast read's frames go to
    ``write_stream`` when given (extract streams them into the final file), else to a sink. A fast
    read that gives up leaves what it wrote behind; the slow read gets a new sink."""
    bar = bar or StageBar()
    bar.item(source.name)
    read = read_table_fast(view, fast, source, new_sink, batch_rows=batch_rows, bar=bar, write_stream=write_stream)
    return read if isinstance(read, TableRead) else read_table_slow(view, source, new_sink(), read,
                                                                     batch_rows=batch_rows, bar=bar)


def read_table_fast(view: ConsistentView, fast: FastSource | str, source: SourceTable,
                    new_sink: Callable[[], Sink] | None = None, *, batch_rows: int = 50_000,
                    bar: StageBar | None = None, write_stream: Callable[[FastStream], None] | None = None,
                    spill_dir: Path | None = None) -> TableRead | str:
    """The fast read of ``source`` (see ``read_table_best``), or why it cannot give the view's
    content (then ``read_table_slow`` reads it). Safe to run for several tables at once.
    ``spill_dir``: where a table copied in another key's order may be read by its primary key
    (``byprimary``); without it such a table is read in ranges of that key."""
    if isinstance(fast, str):
        return fast
    bar = bar or StageBar()
    try:
        stream = FastStream(view, fast, source, batch_rows=batch_rows,
                            progress=lambda rows: bar.item(f"{source.name} {rows:,} rows"), spill_dir=spill_dir)
        if write_stream is not None:
            write_stream(stream)
        else:
            sink = new_sink()
            with contextlib.closing(stream.frames()) as frames:  # a failing sink ends the stream's reads at once
                for frame in frames:
                    sink(frame)
        return stream.result()
    except FastReadUnusable as why:
        return str(why)
    except DatabaseError as err:  # missing, forbidden, timed out: what the slow reader would report too
        return TableRead(source.name, err.kind, optional=source.optional, error=str(err), view=view.number,
                         reader="connectorx" if err.kind == "timeout" else "sqlalchemy")
    except (sa.exc.SQLAlchemyError, OSError) as exc:  # the view's own trouble: the slow reader reports it
        return f"{type(exc).__name__} in the consistent view"


def read_table_slow(view: ConsistentView, source: SourceTable, sink: Sink, reason: str, *, batch_rows: int = 50_000,
                    bar: StageBar | None = None) -> TableRead:
    """``tableread.read_table``, recording ``reason`` (why the fast reader was not used)."""
    with view.lock:
        read = read_table(view, source, sink, batch_rows=batch_rows, bar=bar)
    read.fallback = reason
    return read


def read_tables_fast(engine: Engine, sources: Iterable[SourceTable], *, batch_rows: int = 50_000,
                     statement_seconds: float | None = None, progress: Progress | None = None) -> dict[str, TableRead]:
    """``tableread.read_tables`` with the fast reader: every table into memory, one consistent view."""
    sources = tuple(sources)
    view = ConsistentView(engine)
    failure = view.open_or_failure()
    if failure is not None:
        return failed_reads(sources, failure)
    fast = fast_source(engine, statement_seconds=statement_seconds)
    reads: dict[str, TableRead] = {}
    with (progress or SILENT).stage("read tables", total=len(sources)) as bar, view:
        for source in sources:
            batches: list[list[pl.DataFrame]] = []

            def new_sink() -> Sink:
                batches.append([])
                return batches[-1].append

            read = read_table_best(view, fast, source, new_sink, batch_rows=batch_rows, bar=bar)
            if read.copied:
                kept = batches[-1] if batches else []
                read.frame = pl.concat(kept) if kept else pl.DataFrame(schema=read.schema)
            reads[source.name] = read
            bar.advance()
    return reads
