"""A failed incremental refresh never leaves ``max_statement_time`` set on a pooled MariaDB connection.

Otherwise the next full reload (same engine, same pooled connection) would be cut off after the
incremental refresh's bound. Checked with real failures on the real server: a vanished table, and
a statement the server itself aborts at the bound (its table is locked by another session).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from exporter.errors import DatabaseError
from exporter.live.tables import TableCache
from tests.live.test_live_tables import NOW, SOURCES, Ticks, site_db  # noqa: F401 - site_db is a fixture

pytestmark = pytest.mark.mariadb


def statement_time_bounds(engine) -> set[float]:
    """@@max_statement_time of every connection the engine's pool holds."""
    connections = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]
    try:
        return {float(conn.exec_driver_sql("SELECT @@SESSION.max_statement_time").scalar()) for conn in connections}
    finally:
        for conn in connections:
            conn.close()


def _rename_instances(admin, databases, old: str, new: str) -> None:
    with admin.begin() as conn:
        conn.exec_driver_sql(f"RENAME TABLE `{databases['nova']}`.{old} TO `{databases['nova']}`.{new}")


@pytest.mark.parametrize("failure", ["vanished_table", "statement_aborted_by_the_server"])
def test_a_failed_incremental_refresh_leaves_no_statement_bound_on_pooled_connections(site_db, failure):
    admin, engine, databases = site_db
    ticks = Ticks()
    cache = TableCache({s.name: engine for s in SOURCES}, SOURCES, full_reload_interval=3600, monotonic=ticks,
                       query_timeout=1)
    cache.refresh(NOW)
    ticks.value = 60
    if failure == "vanished_table":
        _rename_instances(admin, databases, "instances", "gone")
        with pytest.raises(DatabaseError):
            cache.refresh(NOW + dt.timedelta(minutes=1))
        _rename_instances(admin, databases, "gone", "instances")
    else:
        with admin.connect() as lock:
            lock.exec_driver_sql("LOCK TABLES " + ", ".join(
                f"`{databases[s.schema]}`.`{s.table}` WRITE" for s in SOURCES))
            try:
                with pytest.raises(DatabaseError) as caught:
                    cache.refresh(NOW + dt.timedelta(minutes=1))
                assert caught.value.kind == "timeout"
            finally:
                lock.exec_driver_sql("UNLOCK TABLES")
    assert statement_time_bounds(engine) == {0.0}
    ticks.value = 3600  # and the next full reload works on the same pool
    assert cache.refresh(NOW + dt.timedelta(hours=1)) and cache.last_mode == "full"
