"""The fast reader (connectorx) gives exactly what the SQLAlchemy reader gives — same parquet
hashes — and, when the database changes during the extract, still exactly the consistent view
opened at its start. Expectations are independent reads: the SQLAlchemy reader (``fast_reads=False``
or ``tableread.read_tables``), taken before the concurrent changes."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from exporter.config import SiteConfig, prefixed_databases
from exporter.db import open_engine
from exporter.adapters.registry import declared_tables
from exporter.extract import fastread
from exporter.extract.connectorx_source import run_query
from exporter.extract.copy import extract_snapshot
from exporter.extract.reading import read_tables_fast
from exporter.extract.tableread import read_tables
from exporter.layout import scan_tables
from exporter.sitegen import generate_site
from tests import support
from tests.extract.test_extract_consistency import BeforeTable

BIG = ("nova.instances", "nova.instance_actions", "nova.instance_actions_events", "blazar.leases",
       "blazar.reservations", "blazar.computehost_allocations", "nova_api.request_specs", "nova.instance_extra")


def _compare(slow: dict, fast: dict) -> None:
    for name, entry in slow.items():
        other = fast[name]
        for field in ("status", "rows", "sha256", "columns", "invalid_values", "missing_columns"):
            assert other[field] == entry[field], (name, field)


@pytest.mark.mariadb
def test_fast_reads_give_the_same_snapshot_as_sqlalchemy_mariadb(db_prefix, tmp_path):
    databases = prefixed_databases(db_prefix)
    generate_site(support.MARIADB_URL, hosts=6, years=0.5, seed=5, databases=databases, truth_dir=tmp_path / "truth")
    site = SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL, databases=databases)
    # small batches: every big table is read in many key ranges (integer and text keys)
    slow = extract_snapshot(site, tmp_path / "slow", snapshot_id="s", batch_rows=37, fast_reads=False).manifest
    fast = extract_snapshot(site, tmp_path / "fast", snapshot_id="s", batch_rows=37).manifest
    _compare(slow["tables"], fast["tables"])
    for name in BIG:
        assert fast["tables"][name]["reader"] == "connectorx", (name, fast["tables"][name]["reader_fallback"])
        assert fast["tables"][name]["rows"] > 37, name
    # keyed by two columns (and no change column): read in the consistent view by SQLAlchemy, and
    # the manifest says why
    cache = fast["tables"]["chameleon_usage.node_usage_report_cache"]
    assert cache["reader"] == "sqlalchemy" and "no single-column key" in cache["reader_fallback"]
    assert {t["reader"] for t in slow["tables"].values()} == {"sqlalchemy"}


@pytest.mark.mariadb
def test_fast_reads_type_awkward_values_like_sqlalchemy_mariadb(db_prefix, tmp_path):
    nova = f"`{db_prefix}nova`"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        # allows the zero and impossible dates old servers stored
        conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        conn.exec_driver_sql(f"CREATE DATABASE {nova}")
        conn.exec_driver_sql(
            f"CREATE TABLE {nova}.compute_nodes (id BIGINT PRIMARY KEY, uuid VARCHAR(36), host VARCHAR(255), "
            "hypervisor_hostname VARCHAR(255), hypervisor_type MEDIUMTEXT, vcpus TINYINT(1), memory_mb INT, "
            "local_gb DECIMAL(10,3), cpu_allocation_ratio FLOAT, ram_allocation_ratio DOUBLE, stats TEXT, "
            "created_at TIMESTAMP NULL, updated_at DATETIME(6), deleted_at DATETIME, deleted INT)")
        conn.exec_driver_sql(
            f"INSERT INTO {nova}.compute_nodes VALUES "
            "(1, 'u1', 'hé', 'n1', 'ironic', 2, 7, 1.500, 0.1, 0.30000000000000004, '{\"a\": 1}', "
            "'2020-01-01 00:00:00', '2020-01-01 00:00:00.250001', '0000-00-00 00:00:00', 0), "
            "(9007199254740993, NULL, '', NULL, NULL, NULL, NULL, NULL, 1e-7, 1e300, NULL, NULL, NULL, NULL, NULL), "
            "(12, 'u3', 'h', 'n3', NULL, 1, 1, 0, 1, 1, NULL, "
            "'1999-12-31 23:59:59', '2020-02-30 00:00:00.5', '0999-12-31 23:59:59', 1), "
            # year 0 is a date to the text reader; a zero month or day is not
            "(13, 'u4', 'h', 'n4', NULL, 1, 1, 0, 1, 1, NULL, "
            "NULL, '0000-01-01 00:00:00.5', '2020-00-15 00:00:00', 1), "
            "(14, 'u5', 'h', 'n5', NULL, 1, 1, 0, 1, 1, NULL, "
            "NULL, '2024-02-29 23:59:59.999999', '2021-06-00 10:00:00', 1)")
        conn.exec_driver_sql(  # DATE columns, and a zero TIMESTAMP
            f"CREATE TABLE {nova}.services (id INT PRIMARY KEY, host VARCHAR(255), `binary` VARCHAR(255), "
            "last_seen_up TIMESTAMP NULL, created_at DATE, updated_at DATETIME, deleted_at DATE, deleted INT)")
        conn.exec_driver_sql(
            f"INSERT INTO {nova}.services VALUES "
            "(1, 'h1', 'nova-compute', '0000-00-00 00:00:00', '0000-00-00', '2020-01-01 00:00:00', '2020-02-30', 0), "
            "(2, 'h2', 'nova-compute', '2020-05-05 05:05:05', '0000-01-01', '0000-00-00 00:00:00', '1600-02-29', 0), "
            "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
    root.dispose()
    site = SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL,
                      databases=prefixed_databases(db_prefix))
    sources = [s for s in declared_tables() if s.name in ("nova.compute_nodes", "nova.services")]
    slow = extract_snapshot(site, tmp_path / "slow", snapshot_id="s", sources=sources, fast_reads=False).manifest
    fast = extract_snapshot(site, tmp_path / "fast", snapshot_id="s", sources=sources).manifest
    _compare(slow["tables"], fast["tables"])
    entry = fast["tables"]["nova.compute_nodes"]
    assert entry["reader"] == "connectorx" and entry["invalid_values"] == {"deleted_at": 3, "updated_at": 1}
    entry = fast["tables"]["nova.services"]
    assert entry["reader"] == "connectorx" and entry["invalid_values"] == {
        "last_seen_up": 1, "created_at": 1, "updated_at": 1, "deleted_at": 1}
    row = scan_tables(tmp_path / "fast" / "f" / "s")["nova.compute_nodes"].collect().row(0, named=True)
    assert (row["cpu_allocation_ratio"], row["ram_allocation_ratio"], row["host"]) == (0.1, 0.30000000000000004, "hé")


@pytest.mark.mariadb
def test_a_utf8mb4_charset_url_is_read_fast_with_the_same_hashes_mariadb(db_prefix, tmp_path):
    """``?charset=utf8mb4`` is what both readers use anyway (connectorx runs SET NAMES utf8mb4):
    the fast reader takes such a URL, and text of 1 to 4 bytes per character gives the same file;
    another charset (utf8 = utf8mb3 turns 4-byte characters into '?') keeps the SQLAlchemy reader."""
    nova = f"`{db_prefix}nova`"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {nova} CHARACTER SET utf8mb4")
        conn.exec_driver_sql(f"CREATE TABLE {nova}.services (id INT PRIMARY KEY, host VARCHAR(255), "
                             "`binary` TEXT, disabled_reason VARCHAR(255), created_at DATETIME) CHARACTER SET utf8mb4")
        conn.exec_driver_sql(f"INSERT INTO {nova}.services VALUES (1, 'hé', '日本', 'ok 🙂', '2020-01-01 00:00:00'), "
                             "(2, 'plain', '', NULL, NULL), (3, '𝔘𝔫𝔦', 'Ωmega ß', '€—ẞ', '2021-01-01 00:00:00')")
    root.dispose()
    sources = [s for s in declared_tables() if s.name == "nova.services"]
    manifests = {}
    for charset in ("utf8mb4", "utf8"):
        site = SiteConfig(name="f", display_name="f", db_url=f"{support.MARIADB_URL}?charset={charset}",
                          databases=prefixed_databases(db_prefix))
        for fast in (False, True):
            manifests[charset, fast] = extract_snapshot(site, tmp_path / f"{charset}-{fast}", snapshot_id="s",
                                                        sources=sources, fast_reads=fast).manifest["tables"]
    _compare(manifests["utf8mb4", False], manifests["utf8mb4", True])
    assert manifests["utf8mb4", True]["nova.services"]["reader"] == "connectorx"
    assert "driver options" in manifests["utf8", True]["nova.services"]["reader_fallback"]
    rows = scan_tables(tmp_path / "utf8mb4-True" / "f" / "s")["nova.services"].collect()
    assert rows["disabled_reason"].to_list() == ["ok 🙂", None, "€—ẞ"] and rows["host"][2] == "𝔘𝔫𝔦"


@pytest.mark.mariadb
def test_a_key_that_is_not_the_primary_key_is_read_in_the_servers_order_mariadb(db_prefix, tmp_path, monkeypatch):
    """nova.instance_extra is copied by instance_uuid, not its primary key id. UUID-like keys
    (whose order here is the collation's) are read once in id ranges, put in instance_uuid ranges
    on disk and sorted here (byprimary); other keys are read in key ranges, sorted by the server
    (mixed case under a case-insensitive collation: 'a' < 'B' < 'c')."""
    nova = f"`{db_prefix}nova`"
    root = sa.create_engine(support.MARIADB_URL)
    uuids = ["c0ffee-0003", "0000-aaaa", "ffff-0001", "1234-abcd", "beef-0002", "0aaa-0000", "dead-0004"]
    uuids += [f"{number * 7919 % 65536:04x}-{number:04x}" for number in range(13)]
    mixed = ["b-1", "A-2", "c-3", "B-0", "a-9", "C-5", "_x", "Z"]
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {nova} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        for table, keys in (("instance_extra", uuids), ("shadow_instance_extra", mixed)):
            conn.exec_driver_sql(f"CREATE TABLE {nova}.{table} (id INT PRIMARY KEY, instance_uuid VARCHAR(36) "
                                 "NOT NULL, flavor TEXT, deleted_at DATETIME, deleted INT, KEY (instance_uuid))")
            for number, key in enumerate(keys):  # ids in another order than the keys
                conn.exec_driver_sql(f"INSERT INTO {nova}.{table} VALUES ({number}, '{key}', "
                                     f"'{{\"n\": {number}}}', '2020-01-0{number % 9 + 1}', 0)")
    root.dispose()
    extra = next(s for s in declared_tables() if s.name == "nova.instance_extra")
    sources = [extra, dataclasses.replace(extra, table="shadow_instance_extra")]
    site = SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL, databases=prefixed_databases(db_prefix))
    slow = extract_snapshot(site, tmp_path / "slow", snapshot_id="s", sources=sources, batch_rows=3,
                            fast_reads=False).manifest["tables"]
    queries: list[str] = []
    monkeypatch.setattr(fastread, "run_query", lambda fast, query: queries.append(query) or run_query(fast, query))
    fast = extract_snapshot(site, tmp_path / "fast", snapshot_id="s", sources=sources, batch_rows=3).manifest["tables"]
    _compare(slow, fast)
    assert {fast[s.name]["reader"] for s in sources} == {"connectorx"}
    read = scan_tables(tmp_path / "fast" / "f" / "s")
    assert read["nova.instance_extra"].collect()["instance_uuid"].to_list() == sorted(uuids)
    extra_reads = [query for query in queries if "_nova`.`instance_extra`" in query]
    assert len(extra_reads) == 7 and all(query.endswith("ORDER BY `id`") for query in extra_reads)  # 20 ids by 3
    assert any("WHERE `instance_uuid`" in query for query in queries)  # the mixed keys: by key ranges
    assert not list((tmp_path / "fast").rglob(".by-primary*"))
    assert read["nova.shadow_instance_extra"].collect()["instance_uuid"].to_list()[:4] == ["A-2", "a-9", "B-0", "b-1"]  # not the bytes' order


def _instance_extra(db_prefix: str, rows: list[tuple[int, str]]) -> None:
    """A nova database holding only instance_extra, with ``(id, instance_uuid)`` rows (flavor 'f<id>')."""
    nova = f"`{db_prefix}nova`"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {nova} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        conn.exec_driver_sql(f"CREATE TABLE {nova}.instance_extra (id INT PRIMARY KEY, instance_uuid VARCHAR(36) "
                             "NOT NULL, flavor TEXT, deleted_at DATETIME, deleted INT, KEY (instance_uuid))")
        conn.exec_driver_sql(f"INSERT INTO {nova}.instance_extra VALUES " + ", ".join(
            f"({number}, '{key}', 'f{number}', '2020-01-01', 0)" for number, key in rows))
    root.dispose()


@pytest.mark.mariadb
def test_a_table_read_by_its_primary_key_during_changes_equals_the_consistent_view_mariadb(db_prefix, tmp_path,
                                                                                            monkeypatch):
    """nova.instance_extra read by id ranges and put in instance_uuid ranges on disk (byprimary):
    rows updated or inserted after the view opened (also past the last key) are the view's or
    absent; a row deleted meanwhile fails the key check and the table is read again in the view."""
    nova = f"`{db_prefix}nova`"
    uuids = [f"{number * 7919 % 65536:04x}-{number:04x}" for number in range(40)]
    _instance_extra(db_prefix, list(enumerate(uuids)))
    root = sa.create_engine(support.MARIADB_URL)
    sources = [s for s in declared_tables() if s.name == "nova.instance_extra"]
    engine = open_engine(support.MARIADB_URL, prefixed_databases(db_prefix))
    expected = read_tables(engine, sources)["nova.instance_extra"].frame
    engine.dispose()
    site = SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL, databases=prefixed_databases(db_prefix))
    for run, delete in (("changed", False), ("deleted", True)):
        def change(delete=delete) -> None:  # committed after the view opened, before the table's read
            with root.begin() as conn:
                conn.exec_driver_sql(f"UPDATE {nova}.instance_extra SET flavor = 'during', "
                                     "deleted_at = UTC_TIMESTAMP() WHERE id IN (3, 17)")
                conn.exec_driver_sql(f"INSERT INTO {nova}.instance_extra VALUES (100, '0000-0000', 'new', "
                                     "UTC_TIMESTAMP(), 0), (200, 'ffff-ffff', 'new', UTC_TIMESTAMP(), 0)")
                if delete:
                    conn.exec_driver_sql(f"DELETE FROM {nova}.instance_extra WHERE id = 5")

        hook, queries = BeforeTable("nova.instance_extra", change), []
        monkeypatch.setattr(fastread, "run_query", lambda fast, query: queries.append(query) or run_query(fast, query))
        result = extract_snapshot(site, tmp_path / run, snapshot_id="s", sources=sources, progress=hook, batch_rows=6)
        assert hook.ran and queries and all(query.endswith("ORDER BY `id`") for query in queries)  # by id only
        assert scan_tables(result.snapshot_dir)["nova.instance_extra"].collect().equals(expected), run
        entry = result.manifest["tables"]["nova.instance_extra"]
        assert entry["reader"] == ("sqlalchemy" if delete else "connectorx"), (run, entry["reader_fallback"])
        with root.begin() as conn:  # back to the rows of the expectation
            conn.exec_driver_sql(f"UPDATE {nova}.instance_extra SET flavor = CONCAT('f', id), "
                                 "deleted_at = '2020-01-01' WHERE id IN (3, 17)")
            conn.exec_driver_sql(f"DELETE FROM {nova}.instance_extra WHERE id > 99")
    root.dispose()


@pytest.mark.mariadb
def test_keys_the_process_cannot_order_are_sorted_by_the_server_from_then_on_mariadb(db_prefix, tmp_path,
                                                                                     monkeypatch):
    """Once a range's keys cannot be put in the collation's order here, every later range is read
    with ORDER BY at once (only the ranges already being read are read again), and the table is
    reflected once (plan_table's reflection serves the fast reader too)."""
    keys = [f"{number:02d}{letter}" for number in range(12) for letter in ("a", "B")]  # 00a < 00B < 01a, not bytes
    _instance_extra(db_prefix, [(len(keys) - number, key) for number, key in enumerate(keys)])
    queries: list[str] = []
    shows: list[str] = []

    def counted(fast, query):  # the real read, counted
        queries.append(query)
        return run_query(fast, query)

    def statement(conn, cursor, text, *args):
        if text.upper().startswith("SHOW CREATE TABLE"):
            shows.append(text)

    monkeypatch.setattr(fastread, "run_query", counted)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", statement)
    try:
        sources = [s for s in declared_tables() if s.name == "nova.instance_extra"]
        site = SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL,
                          databases=prefixed_databases(db_prefix))
        fast = extract_snapshot(site, tmp_path / "fast", snapshot_id="s", sources=sources, batch_rows=2).manifest
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", statement)
    assert fast["tables"]["nova.instance_extra"]["reader"] == "connectorx"
    rows = scan_tables(tmp_path / "fast" / "f" / "s")["nova.instance_extra"].collect()["instance_uuid"].to_list()
    assert rows == sorted(keys, key=str.lower) != sorted(keys)  # the collation's order, not the bytes'

    ranges = len(keys) // 2
    queries = [query for query in queries if "WHERE `instance_uuid`" in query]  # not the try by id (byprimary)
    unordered = [query for query in queries if "ORDER BY" not in query]
    assert len(unordered) <= 1 + fastread.READ_AHEAD, len(unordered)  # the old code read every range twice
    assert len(queries) <= ranges + 1 + fastread.READ_AHEAD, len(queries)
    assert len(shows) == 1, shows  # the old code reflected the table again for the fast reader


@pytest.mark.mariadb
def test_fast_reads_during_concurrent_changes_equal_the_consistent_view_mariadb(db_prefix, tmp_path):
    """Changes committed while extract runs — after its view opened — are not in the snapshot:
    updated and inserted rows (the fast reader takes the view's version), a hard delete and an
    archive run (the key check fails and the table is read again in the view). The shadow table
    was empty in the view, so its archived rows are not copied either."""
    databases = prefixed_databases(db_prefix)
    generate_site(support.MARIADB_URL, hosts=4, years=0.3, seed=3, databases=databases, truth_dir=tmp_path / "truth")
    nova, blazar = f"`{db_prefix}nova`", f"`{db_prefix}blazar`"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:  # rows changed just before the extract: recent in its view
        conn.exec_driver_sql(f"UPDATE {nova}.instance_actions SET updated_at = UTC_TIMESTAMP(), "
                             "message = 'before' ORDER BY id LIMIT 3")
        conn.exec_driver_sql(f"CREATE TABLE {nova}.shadow_instances LIKE {nova}.instances")
    names = ("nova.compute_nodes", "nova.instance_actions", "blazar.leases", "nova.instances", "nova.shadow_instances")
    sources = [s for s in declared_tables() if s.name in names]
    sources.sort(key=lambda s: names.index(s.name))
    engine = open_engine(support.MARIADB_URL, databases)
    expected = {name: read.frame for name, read in read_tables(engine, sources).items()}
    engine.dispose()

    def change() -> None:  # another session, committed after the view opened (first table read)
        with root.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {nova}.instance_actions SET updated_at = UTC_TIMESTAMP(), "
                                 "message = 'during' ORDER BY id LIMIT 6")  # 3 recent in the view, 3 old
            conn.exec_driver_sql(f"UPDATE {nova}.instance_actions SET finish_time = '2001-01-01', "
                                 "updated_at = UTC_TIMESTAMP() ORDER BY id DESC LIMIT 2")
            conn.exec_driver_sql(f"INSERT INTO {nova}.instance_actions (id, instance_uuid, action, created_at) "
                                 "SELECT MAX(id) + 1, 'new', 'create', UTC_TIMESTAMP() "
                                 f"FROM {nova}.instance_actions")
            conn.exec_driver_sql(f"DELETE FROM {blazar}.leases ORDER BY id LIMIT 1")
            conn.exec_driver_sql(f"INSERT INTO {nova}.shadow_instances SELECT * FROM {nova}.instances "
                                 "WHERE deleted != 0 ORDER BY id LIMIT 2")
            conn.exec_driver_sql(f"DELETE FROM {nova}.instances WHERE id IN "
                                 f"(SELECT id FROM {nova}.shadow_instances)")

    site = SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL, databases=databases)
    hook = BeforeTable("nova.instance_actions", change)
    result = extract_snapshot(site, tmp_path / "out", snapshot_id="s", sources=sources, progress=hook, batch_rows=50)
    assert hook.ran
    copied = {name: frame.collect() for name, frame in scan_tables(result.snapshot_dir).items()}
    for name in names:
        assert copied[name].equals(expected[name]), name
    tables = result.manifest["tables"]
    assert tables["nova.instance_actions"]["reader"] == "connectorx"  # recent rows taken from the view
    for name in ("blazar.leases", "nova.instances"):  # key check failed: re-read in the view
        assert tables[name]["reader"] == "sqlalchemy" and "changed during the read" in tables[name]["reader_fallback"]
    with root.connect() as conn:  # the changes really happened meanwhile
        assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {nova}.shadow_instances").scalar() == 2
        assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {nova}.instance_actions WHERE message = 'during'"
                                    ).scalar() == 6
    root.dispose()


@pytest.mark.mariadb
def test_live_full_reads_fast_equal_sqlalchemy_and_fail_clearly_mariadb(db_prefix, tmp_path):
    databases = prefixed_databases(db_prefix)
    generate_site(support.MARIADB_URL, hosts=3, years=0.2, seed=4, databases=databases, truth_dir=tmp_path / "truth")
    engine = open_engine(support.MARIADB_URL, databases)
    sources = declared_tables()
    slow = read_tables(engine, sources, batch_rows=40)
    fast = read_tables_fast(engine, sources, batch_rows=40, statement_seconds=5)
    for name, read in slow.items():
        assert fast[name].status == read.status, name
        if read.frame is not None:
            assert fast[name].frame.equals(read.frame), name
    assert fast["nova.instances"].reader == "connectorx"
    engine.dispose()
    wrong = open_engine(support.MARIADB_URL.replace("root@", "root:wrong@"), databases)
    failed = read_tables_fast(wrong, sources[:2])
    assert {read.status for read in failed.values()} == {"auth_error"}
    assert "wrong" not in str([read.error for read in failed.values()])
    wrong.dispose()


def test_sqlite_is_read_by_sqlalchemy_with_the_reason(tmp_path):
    generate_site(f"sqlite:///{tmp_path / 'site' / 'main.sqlite'}", hosts=3, years=0.2, seed=4,
                  truth_dir=tmp_path / "truth")
    site = SiteConfig(name="f", display_name="f", db_url=f"sqlite:///{tmp_path / 'site' / 'main.sqlite'}")
    manifest = extract_snapshot(site, tmp_path / "out", snapshot_id="s").manifest
    assert {t["reader"] for t in manifest["tables"].values()} == {"sqlalchemy"}
    assert all("read-only" in t["reader_fallback"] for t in manifest["tables"].values())
    assert not list((tmp_path / "site").glob("*mode*"))  # nothing created beside the files

