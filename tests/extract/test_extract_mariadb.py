"""Extraction against the real local MariaDB: completeness, counts, determinism, and failures
(missing table, forbidden table, wrong password, unreachable host) through the CLI."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from exporter.cli import main
from exporter.config import SiteConfig, prefixed_databases
from exporter.extract.copy import extract_snapshot, grant_statements
from exporter.adapters.registry import declared_tables
from exporter.layout import scan_tables
from tests import support

pytestmark = pytest.mark.mariadb

# A small hand-made site: real column types (reference §1.1), soft-delete conventions, and one
# table (nova_api.request_specs) left out on purpose to be "missing".
DDL = {
    "nova": [
        "CREATE TABLE compute_nodes (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(36), "
        "host VARCHAR(255), hypervisor_hostname VARCHAR(255), hypervisor_type MEDIUMTEXT, vcpus INT(11), "
        "memory_mb INT(11), local_gb INT(11), cpu_allocation_ratio FLOAT, created_at DATETIME, "
        "updated_at DATETIME, deleted_at DATETIME, deleted INT(11))",
        "CREATE TABLE instances (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(36) NOT NULL, "
        "node VARCHAR(255), vcpus INT(11), memory_mb INT(11), vm_state VARCHAR(255), launched_at DATETIME, "
        "terminated_at DATETIME, created_at DATETIME, updated_at DATETIME, deleted_at DATETIME, deleted INT(11))",
        "CREATE TABLE instance_actions (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "instance_uuid VARCHAR(36), action VARCHAR(255), start_time DATETIME, created_at DATETIME)",
        "CREATE TABLE instance_actions_events (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "action_id INT(11), event VARCHAR(255), result VARCHAR(255), start_time DATETIME, created_at DATETIME)",
    ],
    "blazar": [
        "CREATE TABLE computehosts (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "hypervisor_hostname VARCHAR(255), vcpus INT(11), reservable TINYINT(1) NOT NULL DEFAULT 1, "
        "created_at DATETIME, deleted_at DATETIME, deleted VARCHAR(36))",
        "CREATE TABLE computehost_extra_capabilities (id VARCHAR(36) PRIMARY KEY, computehost_id INT(11), "
        "capability_id VARCHAR(255), capability_value MEDIUMTEXT, created_at DATETIME)",
        "CREATE TABLE leases (id VARCHAR(36) PRIMARY KEY, name VARCHAR(80), project_id VARCHAR(255), "
        "start_date DATETIME, end_date DATETIME, created_at DATETIME, deleted_at DATETIME, deleted VARCHAR(36))",
        "CREATE TABLE reservations (id VARCHAR(36) PRIMARY KEY, lease_id VARCHAR(36), resource_id VARCHAR(36), "
        "resource_type VARCHAR(66), status VARCHAR(13), created_at DATETIME)",
        "CREATE TABLE computehost_allocations (id VARCHAR(36) PRIMARY KEY, compute_host_id VARCHAR(36), "
        "reservation_id VARCHAR(36), created_at DATETIME, deleted_at DATETIME, deleted VARCHAR(36))",
    ],
}
HOSTS = 30

def _rows(prefix: str) -> list[str]:
    """Insert statements; ids inserted in reverse so the copy must sort by primary key."""
    statements = []
    for host in reversed(range(1, HOSTS + 1)):
        deleted = f"'2021-05-0{host % 9 + 1} 00:00:00', {host}" if host % 4 == 0 else "NULL, 0"
        statements.append(
            f"INSERT INTO {prefix}nova.compute_nodes (id, uuid, host, hypervisor_hostname, hypervisor_type, vcpus, "
            f"memory_mb, local_gb, cpu_allocation_ratio, created_at, deleted_at, deleted) VALUES ({host}, "
            f"'{uuid.UUID(int=host)}', 'ironic', 'node-{host:03d}', 'ironic', {host % 3 * 24}, 196608, 400, 1.5, "
            f"'2019-0{host % 9 + 1}-01 12:00:00', {deleted})")
        statements.append(
            f"INSERT INTO {prefix}blazar.computehosts (id, hypervisor_hostname, vcpus, reservable, created_at) "
            f"VALUES ({host}, 'node-{host:03d}', 48, {host % 2}, '2019-02-01 00:00:00')")
        statements.append(
            f"INSERT INTO {prefix}blazar.leases (id, name, project_id, start_date, end_date, created_at) VALUES "
            f"('{uuid.UUID(int=1000 + host)}', 'lease-{host}', 'p{host % 5}', '2020-01-{host % 28 + 1:02d} 10:00', "
            f"'2020-02-01 10:00', '2019-12-31 09:00:00')")
        statements.append(
            f"INSERT INTO {prefix}nova.instances (id, uuid, node, vcpus, vm_state, launched_at, created_at, deleted) "
            f"VALUES ({host}, '{uuid.UUID(int=5000 + host)}', 'node-{host:03d}', 48, 'active', "
            f"'2020-01-{host % 28 + 1:02d} 10:20:00', '2020-01-{host % 28 + 1:02d} 10:05:00', 0)")
    return statements

@pytest.fixture(scope="module")
def site_db():
    """The hand-made site in databases ``<prefix>nova`` / ``<prefix>blazar``; dropped afterwards."""
    support.require(support.mariadb_available(), "MariaDB at 127.0.0.1:3306")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        for schema, statements in DDL.items():
            conn.exec_driver_sql(f"CREATE DATABASE `{prefix}{schema}`")
            for statement in statements:
                conn.exec_driver_sql(statement.replace("CREATE TABLE ", f"CREATE TABLE `{prefix}{schema}`.", 1))
        for statement in _rows(prefix):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("SET SESSION sql_mode = ''")  # old servers let zero dates in
        conn.exec_driver_sql(f"INSERT INTO `{prefix}blazar`.computehost_allocations VALUES "
                             "('a1', '1', 'r1', '2020-01-01 00:00:00', '0000-00-00 00:00:00', NULL)")
    yield prefix
    support.drop_databases(prefix)
    root.dispose()

@pytest.fixture(scope="module")
def readonly_user(site_db):
    """A user with the printed grants for every declared table except blazar.leases."""
    user, password = f"{site_db}ro", f"pw-{uuid.uuid4().hex[:12]}"
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'")
    for host in ("127.0.0.1", "localhost"):
        for statement in grant_statements(user, host, prefixed_databases(site_db)):
            if "`leases`" in statement:
                continue
            try:
                with root.begin() as conn:
                    conn.exec_driver_sql(statement)
            except sa.exc.ProgrammingError as err:  # GRANT on an absent (optional/missing) table
                assert err.orig.args[0] == 1146, err
    yield user, password
    with root.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'127.0.0.1'")
        conn.exec_driver_sql(f"DROP USER '{user}'@'localhost'")
    root.dispose()

def _source_counts(prefix: str) -> dict[str, int]:
    root = sa.create_engine(support.MARIADB_URL)
    counts = {}
    with root.connect() as conn:
        for schema, statements in DDL.items():
            for statement in statements:
                table = statement.split()[2]
                counts[f"{schema}.{table}"] = conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM `{prefix}{schema}`.`{table}`").scalar()
    root.dispose()
    return counts

def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err

def test_snapshot_complete_counts_equal_source_and_hashes_stable(site_db, tmp_path):
    site = SiteConfig(name="chi", display_name="CHI", db_url=support.MARIADB_URL,
                      databases=prefixed_databases(site_db))
    first = extract_snapshot(site, tmp_path, snapshot_id="a", batch_rows=7)
    second = extract_snapshot(site, tmp_path, snapshot_id="b", batch_rows=7)
    tables = first.manifest["tables"]
    assert list(tables) == [source.name for source in declared_tables()]
    counts = _source_counts(site_db)
    copied = {name: entry["rows"] for name, entry in tables.items() if entry["status"] == "ok"}
    assert copied == counts
    assert tables["nova_api.request_specs"]["status"] == "missing"
    assert first.failed_required == ["nova_api.request_specs"]
    assert all(entry["status"] == "missing" for name, entry in tables.items() if name not in counts
               and name != "nova_api.request_specs")
    for name in counts:
        assert tables[name]["sha256"] == second.manifest["tables"][name]["sha256"], name
    assert first.manifest["sources"]["nova"] == "mysql+pymysql://root@127.0.0.1:3306/"
    assert first.manifest["databases"]["blazar"] == f"{site_db}blazar"
    nodes = scan_tables(first.snapshot_dir, verify=True)["nova.compute_nodes"].collect()
    assert nodes["id"].to_list() == list(range(1, HOSTS + 1))
    assert nodes["hypervisor_hostname"][0] == "node-001"
    assert nodes.filter(nodes["deleted"] != 0)["deleted_at"].null_count() == 0
    types = {c["name"]: (c["source_type"], c["dtype"]) for c in tables["blazar.computehosts"]["columns"]}
    assert types["reservable"] == ("TINYINT(1)", "Int64")
    assert types["created_at"] == ("DATETIME", "Datetime(us)")
    allocations = tables["blazar.computehost_allocations"]
    assert (allocations["rows"], allocations["invalid_values"]) == (1, {"deleted_at": 1})

def test_forbidden_table_is_permission_denied_others_ok(site_db, readonly_user, tmp_path, capsys):
    user, password = readonly_user
    url = f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/"
    code, out, err = _run_cli(["extract", "--db-url", url, "--db-prefix", site_db, "--out", str(tmp_path),
                               "--snapshot-id", "ro", "--quiet"], capsys)
    assert code == 1  # a required table could not be copied
    statuses = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:-1]}
    assert statuses["blazar.leases"] == "permission_denied"
    assert {statuses[name] for name in _source_counts(site_db) if name != "blazar.leases"} == {"ok"}
    assert password not in out + err
    assert "blazar.leases" in err and "Traceback" not in err

def test_wrong_password_is_one_line_without_traceback(site_db, readonly_user, tmp_path):
    user, password = readonly_user
    wrong = password + "x"
    proc = subprocess.run(
        [sys.executable, "-c", "from exporter.cli import main; main()", "extract", "--db-url",
         f"mysql+pymysql://{user}:{wrong}@127.0.0.1:3306/", "--db-prefix", site_db, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "access denied" in lines[0] and "Traceback" not in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert not list(Path(tmp_path).rglob("manifest.json"))

def test_unreachable_host_is_one_line(tmp_path, capsys):
    port = support.free_port()  # nothing listens there
    code, out, err = _run_cli(["extract", "--db-url", f"mysql+pymysql://u:sekrit-pw@127.0.0.1:{port}/",
                               "--out", str(tmp_path), "--quiet"], capsys)
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect" in lines[0]
    assert "sekrit-pw" not in out + err

def test_a_consistent_view_that_cannot_open_fails_on_entry_in_one_line(readonly_user):
    """The view is opened on entry (its moment precedes every read of every thread), and a wrong
    password or a dead server fails there as one clear line, not later as each table's status."""
    from exporter.db import open_engine
    from exporter.errors import DatabaseError
    from exporter.extract.tableread import ConsistentView

    user, password = readonly_user
    engines = {"auth_error": open_engine(f"mysql+pymysql://{user}:{password}x@127.0.0.1:3306/"),
               "connection_error": open_engine(f"mysql+pymysql://{user}:{password}@127.0.0.1:{support.free_port()}/")}
    for kind, engine in engines.items():
        with pytest.raises(DatabaseError) as failure, ConsistentView(engine):
            pass
        assert failure.value.kind == kind and len(str(failure.value).splitlines()) == 1
        assert password not in str(failure.value)
        engine.dispose()
    good = open_engine(f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/")
    with ConsistentView(good) as view:
        assert view.number == 1 and view.started_at is not None  # open before any read
    good.dispose()

def test_read_only_engine_refuses_writes(site_db):
    from exporter.db import open_engine

    engine = open_engine(support.MARIADB_URL, prefixed_databases(site_db))
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM `{site_db}blazar`.`leases`")
    engine.dispose()
    assert _source_counts(site_db)["blazar.leases"] == HOSTS

def test_generated_site_snapshot_is_complete_and_matches_the_generator(db_prefix, tmp_path):
    sitegen = pytest.importorskip("exporter.sitegen")
    generated = sitegen.generate_site(support.MARIADB_URL, hosts=5, years=0.5, seed=11,
                                      databases=prefixed_databases(db_prefix), truth_dir=tmp_path / "truth")
    site = SiteConfig(name="gen", display_name="gen", db_url=support.MARIADB_URL,
                      databases=prefixed_databases(db_prefix))
    result = extract_snapshot(site, tmp_path / "data", snapshot_id="s")
    assert result.failed_required == [] and result.manifest["complete"]
    tables = result.manifest["tables"]
    declared = {source.name for source in declared_tables()}
    written = {name: rows for name, rows in generated.row_counts.items() if name in declared}
    assert {name: tables[name]["rows"] for name in written} == written
    assert {name for name, entry in tables.items() if entry["status"] == "ok"} == set(written)
    frames = scan_tables(result.snapshot_dir, verify=True)
    assert {name: frame.collect().height for name, frame in frames.items()} == written

def test_query_slower_than_query_timeout_is_status_timeout(db_prefix, tmp_path):
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{db_prefix}blazar`")
        for statement in DDL["blazar"]:
            conn.exec_driver_sql(statement.replace("CREATE TABLE ", f"CREATE TABLE `{db_prefix}blazar`.", 1))
    site = SiteConfig(name="slow", display_name="slow", db_url=support.MARIADB_URL, query_timeout=1,
                      databases=prefixed_databases(db_prefix))
    sources = [s for s in declared_tables() if s.name in ("blazar.leases", "blazar.computehosts")]
    with root.connect() as locker:  # a WRITE lock makes every other session's SELECT wait
        locker.exec_driver_sql(f"LOCK TABLES `{db_prefix}blazar`.`leases` WRITE")
        try:
            result = extract_snapshot(site, tmp_path, snapshot_id="s", sources=sources)
        finally:
            locker.exec_driver_sql("UNLOCK TABLES")
    root.dispose()
    tables = result.manifest["tables"]
    assert tables["blazar.leases"]["status"] == "timeout"
    assert tables["blazar.computehosts"]["status"] == "ok"
