"""Incremental table cache against real MariaDB: after any change the cache equals a fresh full read.

The expectation is always an independent full read of the database (``read_tables``), never the
cache's own earlier output.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa

from exporter.db import open_engine
from exporter.errors import DatabaseError
from exporter.adapters.registry import read_with_parent
from exporter.live.tables import TableCache
from exporter.adapters.registry import declared_tables
from exporter.extract.tableread import read_tables

pytestmark = pytest.mark.mariadb

NOW = dt.datetime(2026, 3, 1, 12, 0)
SOURCES = tuple(s for s in declared_tables() if s.name in ("blazar.leases", "nova.instances", "nova.instance_actions"))


@pytest.fixture
def site_db(mariadb_url, db_prefix):
    """Two declared tables with a few rows; returns (admin engine, read-only engine, databases)."""
    databases = {"blazar": f"{db_prefix}blazar", "nova": f"{db_prefix}nova"}
    admin = sa.create_engine(mariadb_url)
    with admin.begin() as conn:
        for physical in databases.values():
            conn.exec_driver_sql(f"CREATE DATABASE `{physical}`")
        conn.exec_driver_sql(
            f"CREATE TABLE `{databases['blazar']}`.leases (id VARCHAR(36) PRIMARY KEY, name VARCHAR(80), "
            "project_id VARCHAR(36), start_date DATETIME, end_date DATETIME, status VARCHAR(20), "
            "created_at DATETIME, updated_at DATETIME, deleted_at DATETIME, deleted VARCHAR(36))")
        conn.exec_driver_sql(
            f"CREATE TABLE `{databases['nova']}`.instances (id INT PRIMARY KEY, uuid VARCHAR(36), node VARCHAR(255), "
            "vcpus INT, memory_mb INT, vm_state VARCHAR(20), launched_at DATETIME, terminated_at DATETIME, "
            "created_at DATETIME, updated_at DATETIME, deleted_at DATETIME, deleted INT)")
        conn.exec_driver_sql(
            f"CREATE TABLE `{databases['nova']}`.instance_actions (id INT PRIMARY KEY, action VARCHAR(255), "
            "instance_uuid VARCHAR(36), start_time DATETIME, created_at DATETIME, updated_at DATETIME, "
            "deleted_at DATETIME, deleted INT, KEY (instance_uuid))")
        old = NOW - dt.timedelta(days=30)
        for i in range(5):
            conn.execute(sa.text(f"INSERT INTO `{databases['blazar']}`.leases VALUES "
                                 "(:id, :name, 'p1', :s, :e, 'ACTIVE', :c, NULL, NULL, '0')"),
                         {"id": f"lease-{i}", "name": f"l{i}", "s": old, "e": NOW + dt.timedelta(days=i), "c": old})
            conn.execute(sa.text(f"INSERT INTO `{databases['nova']}`.instances VALUES "
                                 "(:id, :uuid, :node, 8, 1024, 'active', :c, NULL, :c, :c, NULL, 0)"),
                         {"id": i + 1, "uuid": f"uuid-{i}", "node": f"node-{i}", "c": old})
    engine = open_engine(mariadb_url, databases)
    yield admin, engine, databases
    engine.dispose()
    admin.dispose()


def full_read(engine) -> dict[str, pl.DataFrame]:
    return {name: read.frame.sort(read.frame.columns[0]) for name, read in read_tables(engine, SOURCES).items()}


def assert_same_tables(cached: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    assert sorted(cached) == sorted(expected)
    for name in expected:
        key = expected[name].columns[0]
        assert cached[name].sort(key).equals(expected[name]), name


class Ticks:
    """A monotonic clock the test advances by hand (decides when a full reload is due)."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def test_incremental_refresh_sees_inserts_updates_soft_and_hard_deletes(site_db):
    admin, engine, databases = site_db
    ticks = Ticks()
    cache = TableCache({s.name: engine for s in SOURCES}, SOURCES, full_reload_interval=3600, monotonic=ticks)
    assert_same_tables(cache.refresh(NOW), full_read(engine))
    assert cache.last_mode == "full"
    later = NOW + dt.timedelta(minutes=1)
    with admin.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO `{databases['blazar']}`.leases VALUES "
                             "('lease-new', 'n', 'p2', :t, :e, 'ACTIVE', :t, NULL, NULL, '0')"),
                     {"t": later, "e": later + dt.timedelta(days=1)})
        conn.execute(sa.text(f"UPDATE `{databases['nova']}`.instances SET vm_state='stopped', updated_at=:t "
                             "WHERE id=2"), {"t": later})
        # oslo.db soft delete: deleted_at set, updated_at kept as it was
        conn.execute(sa.text(f"UPDATE `{databases['nova']}`.instances SET deleted=id, deleted_at=:t, "
                             "terminated_at=:t WHERE id=3"), {"t": later})
        conn.exec_driver_sql(f"DELETE FROM `{databases['blazar']}`.leases WHERE id='lease-0'")  # hard delete
    ticks.value = 60
    refreshed = cache.refresh(later)
    assert cache.last_mode == "incremental"
    assert_same_tables(refreshed, full_read(engine))
    assert refreshed["nova.instances"].filter(pl.col("id") == 2)["vm_state"].item() == "stopped"
    assert "lease-0" not in refreshed["blazar.leases"]["id"].to_list()


def test_incremental_refresh_reads_only_changed_rows(site_db):
    admin, engine, databases = site_db
    ticks = Ticks()
    cache = TableCache({s.name: engine for s in SOURCES}, SOURCES, full_reload_interval=3600, monotonic=ticks)
    cache.refresh(NOW)
    assert cache.last_rows_read == 10
    with admin.begin() as conn:
        conn.execute(sa.text(f"UPDATE `{databases['nova']}`.instances SET vm_state='stopped', updated_at=:t "
                             "WHERE id=1"), {"t": NOW})
    ticks.value = 60
    cache.refresh(NOW + dt.timedelta(minutes=1))
    assert (cache.last_mode, cache.last_rows_read) == ("incremental", 1)
    ticks.value = 3600
    cache.refresh(NOW + dt.timedelta(hours=1))
    assert cache.last_mode == "full"


def test_a_failing_refresh_raises_a_typed_error_and_keeps_the_last_good_tables(site_db, mariadb_url):
    admin, engine, databases = site_db
    ticks = Ticks()
    cache = TableCache({s.name: engine for s in SOURCES}, SOURCES, full_reload_interval=3600, monotonic=ticks)
    before = cache.refresh(NOW)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"RENAME TABLE `{databases['nova']}`.instances TO `{databases['nova']}`.gone")
    ticks.value = 60
    with pytest.raises(DatabaseError) as failure:
        cache.refresh(NOW + dt.timedelta(minutes=1))
    assert failure.value.kind == "missing"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"RENAME TABLE `{databases['nova']}`.gone TO `{databases['nova']}`.instances")
    assert_same_tables(cache.refresh(NOW + dt.timedelta(minutes=2)), before)


def test_child_rows_are_read_with_their_changed_parent_and_otherwise_at_the_full_reload(site_db):
    admin, engine, databases = site_db
    ticks = Ticks()
    cache = TableCache({s.name: engine for s in SOURCES}, SOURCES, full_reload_interval=3600, monotonic=ticks,
                       children=read_with_parent(SOURCES))
    cache.refresh(NOW)
    later = NOW + dt.timedelta(minutes=1)
    with admin.begin() as conn:
        for action_id, uuid in ((1, "uuid-1"), (2, "uuid-2")):
            conn.execute(sa.text(f"INSERT INTO `{databases['nova']}`.instance_actions VALUES "
                                 "(:id, 'stop', :uuid, :t, :t, NULL, NULL, 0)"), {"id": action_id, "uuid": uuid, "t": later})
        # Nova saves the instance with the action: uuid-1 is touched, uuid-2 (a straggler) is not
        conn.execute(sa.text(f"UPDATE `{databases['nova']}`.instances SET vm_state='stopped', updated_at=:t "
                             "WHERE uuid='uuid-1'"), {"t": later})
    ticks.value = 60
    actions = cache.refresh(later)["nova.instance_actions"]
    assert actions["instance_uuid"].to_list() == ["uuid-1"]
    ticks.value = 3600
    assert_same_tables(cache.refresh(later + dt.timedelta(hours=1)), full_read(engine))


def test_full_reloads_read_with_the_fast_reader(site_db):
    """The first refresh, each scheduled full reload and a Blazar re-read after a hard delete read
    with connectorx (checked against the consistent view) and equal an independent SQLAlchemy read."""
    admin, engine, databases = site_db
    ticks = Ticks()
    cache = TableCache({s.name: engine for s in SOURCES}, SOURCES, full_reload_interval=3600, monotonic=ticks)

    def readers() -> dict[str, str]:
        return {name: read.reader for name, read in cache.saved().reads.items()}

    assert_same_tables(cache.refresh(NOW), full_read(engine))
    assert cache.last_mode == "full"
    assert readers() == dict.fromkeys((s.name for s in SOURCES), "connectorx")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM `{databases['blazar']}`.leases WHERE id='lease-1'")  # hard delete: re-read
        conn.execute(sa.text(f"UPDATE `{databases['nova']}`.instances SET vm_state='stopped', updated_at=:t "
                             "WHERE id=4"), {"t": NOW})
    ticks.value = 60
    assert_same_tables(cache.refresh(NOW + dt.timedelta(minutes=1)), full_read(engine))
    assert cache.last_mode == "incremental" and readers()["blazar.leases"] == "connectorx"
    ticks.value = 3600
    assert_same_tables(cache.refresh(NOW + dt.timedelta(hours=1)), full_read(engine))
    assert cache.last_mode == "full"
    assert readers() == dict.fromkeys((s.name for s in SOURCES), "connectorx")
