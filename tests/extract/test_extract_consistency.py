"""Extract reads each database in one consistent snapshot: a concurrent archive run
(``nova-manage db archive_deleted_rows`` moves rows from instances to shadow_instances) between
two table reads must not show a row in both tables (nor in neither)."""

from __future__ import annotations

import contextlib
import sqlite3

import polars as pl
import pytest
import sqlalchemy as sa

from exporter.config import SiteConfig, prefixed_databases
from exporter.adapters.registry import declared_tables
from exporter.extract.copy import extract_snapshot
from exporter.progress import Progress, StageBar
from exporter.layout import scan_tables
from tests import support

INSTANCE_DDL = ("(id INT NOT NULL PRIMARY KEY, uuid VARCHAR(36) NOT NULL, node VARCHAR(255), "
                "launched_at DATETIME, created_at DATETIME, deleted_at DATETIME, deleted INT)")
ROWS = 20
ARCHIVED = (3, 7, 11)  # soft-deleted rows the concurrent archive run moves


def _instance_rows() -> list[str]:
    return [f"({i}, 'uuid-{i}', 'node-{i % 4}', '2020-01-01 00:10:00', '2020-01-01 00:00:00', "
            + ("'2020-02-01 00:00:00', 1)" if i in ARCHIVED else "NULL, 0)") for i in range(1, ROWS + 1)]


class BeforeTable(Progress):
    """A progress reporter that runs ``hook`` just before extract starts reading ``table``."""

    def __init__(self, table: str, hook) -> None:
        super().__init__(enabled=False)
        self.table, self.hook, self.ran = table, hook, False

    @contextlib.contextmanager
    def stage(self, name, total=None):
        reporter = self

        class Bar(StageBar):
            def item(self, text):
                if text == reporter.table and not reporter.ran:
                    reporter.ran = True
                    reporter.hook()

        yield Bar()


def _copied_ids(result) -> list[int]:
    frames = scan_tables(result.snapshot_dir)
    both = pl.concat([frames["nova.instances"].select("id").collect(),
                      frames["nova.shadow_instances"].select("id").collect()])
    return sorted(both.get_column("id").to_list())


SOURCES = [s for s in declared_tables() if s.name in ("nova.instances", "nova.shadow_instances")]


@pytest.mark.mariadb
def test_archive_run_during_extract_does_not_mix_views_mariadb(db_prefix, tmp_path):
    nova = f"`{db_prefix}nova`"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {nova}")
        conn.exec_driver_sql(f"CREATE TABLE {nova}.instances {INSTANCE_DDL}")
        conn.exec_driver_sql(f"CREATE TABLE {nova}.shadow_instances {INSTANCE_DDL}")
        conn.exec_driver_sql(f"INSERT INTO {nova}.instances VALUES {', '.join(_instance_rows())}")

    def archive() -> None:  # another session, committed while extract is between two tables
        ids = ", ".join(map(str, ARCHIVED))
        with root.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {nova}.shadow_instances SELECT * FROM {nova}.instances "
                                 f"WHERE id IN ({ids})")
            conn.exec_driver_sql(f"DELETE FROM {nova}.instances WHERE id IN ({ids})")

    site = SiteConfig(name="c", display_name="c", db_url=support.MARIADB_URL,
                      databases=prefixed_databases(db_prefix))
    hook = BeforeTable("nova.shadow_instances", archive)
    result = extract_snapshot(site, tmp_path, snapshot_id="s", sources=SOURCES, progress=hook, batch_rows=4)
    assert hook.ran
    assert _copied_ids(result) == list(range(1, ROWS + 1))  # every row once: the view before the archive
    with root.connect() as conn:  # and the archive really happened meanwhile
        assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {nova}.shadow_instances").scalar() == len(ARCHIVED)
    root.dispose()


def test_archive_run_during_extract_does_not_mix_views_sqlite(tmp_path):
    sqlite3.connect(tmp_path / "site.sqlite").close()
    with sqlite3.connect(tmp_path / "nova.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")  # writers may commit while a reader holds its snapshot
        db.execute(f"CREATE TABLE instances {INSTANCE_DDL}")
        db.execute(f"CREATE TABLE shadow_instances {INSTANCE_DDL}")
        db.execute(f"INSERT INTO instances VALUES {', '.join(_instance_rows())}")

    def archive() -> None:
        ids = ", ".join(map(str, ARCHIVED))
        with sqlite3.connect(tmp_path / "nova.sqlite", timeout=5) as db:
            db.execute(f"INSERT INTO shadow_instances SELECT * FROM instances WHERE id IN ({ids})")
            db.execute(f"DELETE FROM instances WHERE id IN ({ids})")
        db.close()

    site = SiteConfig(name="c", display_name="c", db_url=f"sqlite:///{tmp_path / 'site.sqlite'}")
    hook = BeforeTable("nova.shadow_instances", archive)
    result = extract_snapshot(site, tmp_path / "out", snapshot_id="s", sources=SOURCES, progress=hook, batch_rows=4)
    assert hook.ran
    assert _copied_ids(result) == list(range(1, ROWS + 1))
    with sqlite3.connect(tmp_path / "nova.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM shadow_instances").fetchone()[0] == len(ARCHIVED)
