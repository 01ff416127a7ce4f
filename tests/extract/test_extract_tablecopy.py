"""Copying a site's tables (tablecopy) when something goes wrong, against the real MariaDB: the
size query that orders the work failing, a table's copy failing, Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from exporter.config import SiteConfig, prefixed_databases
from exporter.db import open_engine
from exporter.adapters.registry import declared_tables
from exporter.extract import tablecopy
from exporter.extract.connectorx_source import fast_source
from exporter.extract.copy import extract_snapshot
from exporter.extract.reading import read_table_fast
from exporter.extract.tableread import ConsistentView
from exporter.progress import SILENT
from exporter.sitegen import generate_site
from tests import support

pytestmark = pytest.mark.mariadb

NAMES = ("nova.compute_nodes", "nova.instances", "nova.instance_actions", "nova.instance_actions_events",
         "blazar.leases", "blazar.reservations", "blazar.computehosts")


@pytest.fixture(scope="module")
def site(mariadb_url, tmp_path_factory):
    prefix = f"harden_{uuid.uuid4().hex[:8]}_"
    databases = prefixed_databases(prefix)
    generate_site(mariadb_url, hosts=3, years=0.2, seed=4, databases=databases,
                  truth_dir=tmp_path_factory.mktemp("truth"))
    yield SiteConfig(name="f", display_name="f", db_url=mariadb_url, databases=databases)
    support.drop_databases(prefix, mariadb_url)


def _sources():
    return tuple(s for s in declared_tables() if s.name in NAMES)


def _counting(monkeypatch, each=None) -> list[str]:
    """The names of the tables whose copy started, in order; ``each(number)`` runs at each start."""
    started, real = [], tablecopy.read_table_fast

    def read(view, fast, source, *args, **kwargs):
        started.append(source.name)
        if each is not None:
            each(len(started))
        return real(view, fast, source, *args, **kwargs)

    monkeypatch.setattr(tablecopy, "read_table_fast", read)
    return started


def _main_thread_waits_for_a_result() -> bool:
    """Whether the main thread is blocked in a Future's result() (as a person's Ctrl-C finds it)."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None and not (frame.f_code.co_name == "result" and "futures" in frame.f_code.co_filename):
        frame = frame.f_back
    return frame is not None


def test_a_failed_size_query_copies_in_the_declared_order(site, tmp_path, monkeypatch):
    """The server's size estimate only orders the work: when its query fails (here the view's
    connection is killed by the server), the tables are copied in the declared order, in a view
    reopened by the first read, instead of a traceback."""
    started = _counting(monkeypatch)
    sources = _sources()
    engine = open_engine(site.db_url, site.databases)
    root = sa.create_engine(support.MARIADB_URL)
    try:
        with ConsistentView(engine) as view:
            with root.connect() as conn:
                conn.exec_driver_sql(f"KILL CONNECTION {view.connection().exec_driver_sql('SELECT CONNECTION_ID()').scalar()}")
            reads, files = tablecopy.copy_tables(site, {site.url_for("nova"): view}, sources, tmp_path, 50_000, SILENT)
    finally:
        engine.dispose()
        root.dispose()
    assert started == [s.name for s in sources]
    assert {read.status for read in reads.values()} == {"ok"} and set(files) == set(NAMES)
    assert {read.view for read in reads.values()} == {2}  # the killed view was replaced once


def test_a_failed_table_starts_no_further_table(site, tmp_path, monkeypatch):
    """The second table fails while the first is still being copied: no further table starts (the
    old code's main thread waited for the first table's result before it saw the failure, and the
    failed worker meanwhile took the queued tables)."""
    failing = threading.Event()

    def second_fails_while_first_runs(number: int) -> None:
        if number == 1:
            failing.wait()
        elif number == 2:
            failing.set()
            raise RuntimeError("the second table failed")

    started = _counting(monkeypatch, second_fails_while_first_runs)
    with pytest.raises(RuntimeError, match="the second table failed"):
        extract_snapshot(site, tmp_path, snapshot_id="s", sources=_sources())
    assert len(started) == 2, started
    assert not (tmp_path / "f" / "s").exists()


def test_ctrl_c_starts_no_further_table(site, tmp_path, monkeypatch):
    """Ctrl-C reaches the main thread while a worker copies the first table: that copy ends, no
    other starts (the worker goes on only once the main thread is leaving, so the test is exact;
    Executor.map's own cancelling did this too: a guard)."""
    monkeypatch.setattr(tablecopy, "TABLE_WORKERS", 1)
    leaving = threading.Event()

    class Pool(tablecopy.ThreadPoolExecutor):
        def shutdown(self, *args, **kwargs):
            leaving.set()
            super().shutdown(*args, **kwargs)

    def interrupt_first(number: int) -> None:
        if number == 1:
            while not _main_thread_waits_for_a_result():
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGINT)
            leaving.wait()

    monkeypatch.setattr(tablecopy, "ThreadPoolExecutor", Pool)
    started = _counting(monkeypatch, interrupt_first)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            extract_snapshot(site, tmp_path, snapshot_id="s", sources=_sources())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(started) == 1, started
    assert not (tmp_path / "f" / "s").exists()


def test_a_fast_read_is_labelled_with_the_view_it_was_checked_against(site, tmp_path):
    """Another table's read may reopen the shared view (its connection broke) while this table
    streams; this table's rows and key check are the first view's, and so is its label (the old
    code read the number at the end of the stream: 2)."""
    source = next(s for s in declared_tables() if s.name == "nova.compute_nodes")
    engine = open_engine(site.db_url, site.databases)
    try:
        with ConsistentView(engine) as view:
            def write(stream) -> None:
                for number, _ in enumerate(stream.frames()):
                    if number == 0:  # one key range: every query on the first view is done by now
                        view.close()
                        view.connection()

            read = read_table_fast(view, fast_source(engine, statement_seconds=30), source, write_stream=write)
            assert view.number == 2
    finally:
        engine.dispose()
    assert read.reader == "connectorx" and read.rows > 0 and read.view == 1
