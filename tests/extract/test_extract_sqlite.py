"""Extraction from SQLite files: typing, invalid values, statuses, atomic never-overwritten snapshots."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import polars as pl
import pytest

from exporter.config import SiteConfig
from exporter.db import open_engine
from exporter.errors import ConfigError, DatabaseError, SnapshotError
from exporter.extract.copy import extract_snapshot, read_tables
from exporter.layout import scan_tables
from exporter.snapshots import file_sha256, read_manifest
from exporter.adapters.declared import SourceTable
from exporter.adapters.registry import declared_tables

HOSTS = SourceTable("nova", "compute_nodes", ("id", "hypervisor_hostname", "vcpus", "cpu_allocation_ratio",
                                               "created_at", "deleted_at", "deleted", "uuid"),
                    required=("id", "hypervisor_hostname", "created_at"))
LEASES = SourceTable("blazar", "leases", ("id", "start_date", "end_date"), required=("id", "start_date"))
ABSENT = SourceTable("zun", "container", ("id",), optional=True)
NO_REQUIRED = SourceTable("blazar", "computehosts", ("id", "hypervisor_hostname"),
                          required=("id", "hypervisor_hostname"))


@pytest.fixture
def sqlite_site(tmp_path):
    """Main file + nova.sqlite + blazar.sqlite with hand-written rows (inserted out of id order)."""
    sqlite3.connect(tmp_path / "site.sqlite").close()
    with sqlite3.connect(tmp_path / "nova.sqlite") as nova:
        nova.execute("CREATE TABLE compute_nodes (id INTEGER PRIMARY KEY, hypervisor_hostname VARCHAR(255), "
                     "vcpus INTEGER, cpu_allocation_ratio FLOAT, created_at DATETIME, deleted_at DATETIME, "
                     "deleted INTEGER, disabled BOOLEAN)")
        nova.executemany("INSERT INTO compute_nodes VALUES (?,?,?,?,?,?,?,?)", [
            (3, "c", "many", 1.0, "2020-03-01 00:00:00", "0000-00-00 00:00:00", 0, 1),
            (1, "a", 48, None, "2019-01-01 10:00:00", "2019-06-01 12:30:00.250000", 1, 0),
            (2, "b", None, 16.0, "2020-01-01T00:00:00", None, 0, None),
        ])
    with sqlite3.connect(tmp_path / "blazar.sqlite") as blazar:
        blazar.execute("CREATE TABLE leases (id VARCHAR(36) PRIMARY KEY, start_date DATETIME, end_date DATETIME)")
        blazar.execute("CREATE TABLE computehosts (id INTEGER PRIMARY KEY, created_at DATETIME)")
    return SiteConfig(name="lab", display_name="Lab", db_url=f"sqlite:///{tmp_path / 'site.sqlite'}")


def test_read_tables_types_order_and_statuses(sqlite_site):
    engine = open_engine(sqlite_site.db_url)
    reads = read_tables(engine, [HOSTS, LEASES, ABSENT, NO_REQUIRED], batch_rows=2)
    hosts = reads["nova.compute_nodes"]
    assert hosts.status == "ok"
    assert hosts.missing_columns == ("uuid",)
    expected = pl.DataFrame({
        "id": [1, 2, 3],
        "hypervisor_hostname": ["a", "b", "c"],
        "vcpus": [48, None, None],
        "cpu_allocation_ratio": [None, 16.0, 1.0],
        "created_at": [dt.datetime(2019, 1, 1, 10), dt.datetime(2020, 1, 1), dt.datetime(2020, 3, 1)],
        "deleted_at": [dt.datetime(2019, 6, 1, 12, 30, 0, 250000), None, None],
        "deleted": [1, 0, 0],
    }, schema={"id": pl.Int64, "hypervisor_hostname": pl.String, "vcpus": pl.Int64,
               "cpu_allocation_ratio": pl.Float64, "created_at": pl.Datetime("us"),
               "deleted_at": pl.Datetime("us"), "deleted": pl.Int64})
    assert hosts.frame.equals(expected)
    # "many" in an INTEGER column and a MySQL zero date cannot be typed: null, and counted
    assert hosts.invalid_values == {"vcpus": 1, "deleted_at": 1}
    leases = reads["blazar.leases"]
    assert (leases.status, leases.rows) == ("ok", 0)
    assert leases.frame.schema == pl.Schema({"id": pl.String, "start_date": pl.Datetime("us"),
                                             "end_date": pl.Datetime("us")})
    assert reads["zun.container"].status == "missing"
    assert reads["blazar.computehosts"].status == "missing_columns"
    assert "hypervisor_hostname" in reads["blazar.computehosts"].error


def test_snapshot_files_manifest_and_reading_back(sqlite_site, tmp_path):
    out = tmp_path / "data"
    result = extract_snapshot(sqlite_site, out, snapshot_id="20261121T230000Z",
                              sources=[HOSTS, LEASES, ABSENT], batch_rows=2)
    assert result.snapshot_dir == out / "lab" / "20261121T230000Z"
    assert sorted(p.name for p in result.snapshot_dir.iterdir()) == [
        "blazar.leases.parquet", "manifest.json", "nova.compute_nodes.parquet"]
    assert [p.name for p in (out / "lab").iterdir()] == ["20261121T230000Z"]  # no temp dirs left
    manifest = json.loads((result.snapshot_dir / "manifest.json").read_text())
    assert manifest == result.manifest == read_manifest(result.snapshot_dir)
    hosts = manifest["tables"]["nova.compute_nodes"]
    assert (hosts["status"], hosts["rows"]) == ("ok", 3)
    assert hosts["sha256"] == file_sha256(result.snapshot_dir / "nova.compute_nodes.parquet")
    assert {c["name"]: c["dtype"] for c in hosts["columns"]}["created_at"] == "Datetime(us)"
    assert {c["name"]: c["source_type"] for c in hosts["columns"]}["hypervisor_hostname"] == "VARCHAR(255)"
    assert manifest["tables"]["zun.container"] == {
        "status": "missing", "optional": True, "rows": None, "file": None, "sha256": None, "bytes": None,
        "columns": [], "missing_columns": [], "invalid_values": {}, "error": "zun.container: does not exist",
        "read_view": 1, "reader": "sqlalchemy", "reader_fallback": manifest["tables"]["zun.container"]["reader_fallback"]}
    # SQLite is read by SQLAlchemy only: connectorx cannot open it read-only (exporter.extract.connectorx_source)
    assert {entry["reader"] for entry in manifest["tables"].values()} == {"sqlalchemy"}
    assert "read-only" in manifest["tables"]["nova.compute_nodes"]["reader_fallback"]
    assert {entry["read_view"] for entry in manifest["tables"].values()} == {1}  # one consistent snapshot
    assert manifest["complete"] is True and result.failed_required == []
    assert manifest["started_at"] <= manifest["finished_at"]
    frames = scan_tables(result.snapshot_dir, verify=True)
    assert sorted(frames) == ["blazar.leases", "nova.compute_nodes"]
    assert frames["nova.compute_nodes"].collect()["id"].to_list() == [1, 2, 3]


def test_same_rows_give_identical_files_and_snapshots_are_never_overwritten(sqlite_site, tmp_path):
    first = extract_snapshot(sqlite_site, tmp_path, snapshot_id="one", sources=[HOSTS, LEASES], batch_rows=1)
    second = extract_snapshot(sqlite_site, tmp_path, snapshot_id="two", sources=[HOSTS, LEASES], batch_rows=1)
    for name in ("nova.compute_nodes", "blazar.leases"):
        assert first.manifest["tables"][name]["sha256"] == second.manifest["tables"][name]["sha256"]
    with pytest.raises(SnapshotError, match="already exists"):
        extract_snapshot(sqlite_site, tmp_path, snapshot_id="one", sources=[HOSTS])
    with pytest.raises(ConfigError):
        extract_snapshot(sqlite_site, tmp_path, snapshot_id="../escape", sources=[HOSTS])


def test_required_table_failure_is_reported_but_the_rest_is_kept(sqlite_site, tmp_path):
    result = extract_snapshot(sqlite_site, tmp_path, snapshot_id="s", sources=[HOSTS, NO_REQUIRED])
    assert result.failed_required == ["blazar.computehosts"]
    assert result.manifest["complete"] is False
    assert result.manifest["tables"]["nova.compute_nodes"]["status"] == "ok"


def test_nonexistent_sqlite_file_is_one_clear_error(tmp_path):
    site = SiteConfig(name="x", display_name="x", db_url=f"sqlite:///{tmp_path / 'nope.sqlite'}")
    with pytest.raises(DatabaseError, match="does not exist"):
        extract_snapshot(site, tmp_path / "out", sources=[HOSTS])
    assert not (tmp_path / "out" / "x").exists()


def test_every_declared_table_is_extractable_by_name():
    names = [source.name for source in declared_tables()]
    assert len(names) == len(set(names))
    assert all(source.columns for source in declared_tables())


def test_cli_site_from_config_writes_under_data_dir(sqlite_site, tmp_path):
    from click.testing import CliRunner

    from exporter.cli import cli

    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'snapshots'}\nsites:\n  lab:\n    db_url: {sqlite_site.db_url}\n")
    result = CliRunner().invoke(cli, ["extract", "--site", "lab", "--config", str(config), "--snapshot-id", "x",
                                      "--quiet"])
    snapshot = tmp_path / "snapshots" / "lab" / "x"
    assert (snapshot / "manifest.json").exists()
    lines = result.stdout.splitlines()
    assert lines[-1].startswith(f"snapshot: {snapshot}")
    assert any(line.split()[:2] == ["nova.compute_nodes", "ok"] for line in lines)
    # the fixture lacks most required tables: reported, and a non-zero exit
    assert result.exit_code == 1 and "required table(s) not copied" in result.stderr


def test_a_table_keyed_by_two_columns_is_read_in_the_order_of_both(tmp_path):
    """The legacy cache is declared by ``date`` but keyed by (date, node_type): rows sharing a date
    must not come back in the server's physical order, or two extracts of the same rows differ
    (here the key's index leads with node_type, so ordering by date alone leaves ties to the scan)."""
    from exporter.adapters.legacy_usage import READS
    source = READS[0]
    rows = [("2020-01-02", "gpu", 1.0), ("2020-01-01", "gpu", 2.0), ("2020-01-02", "compute", 3.0),
            ("2020-01-01", "storage", 4.0), ("2020-01-01", "compute", 5.0)]
    frames = []
    for name, order in (("forward", rows), ("backward", rows[::-1])):
        (tmp_path / name).mkdir()
        sqlite3.connect(tmp_path / name / "site.sqlite").close()
        with sqlite3.connect(tmp_path / name / "chameleon_usage.sqlite") as db:
            db.execute("CREATE TABLE node_usage_report_cache (date DATE, node_type VARCHAR(255), "
                       "maint_hours FLOAT, reserved_hours FLOAT, used_hours FLOAT, idle_hours FLOAT, "
                       "total_hours FLOAT, PRIMARY KEY (node_type, date))")
            db.executemany("INSERT INTO node_usage_report_cache (date, node_type, used_hours) VALUES (?,?,?)", order)
        engine = open_engine(f"sqlite:///{tmp_path / name / 'site.sqlite'}")
        read = read_tables(engine, [source], batch_rows=2)[source.name]
        assert read.status == "ok"
        frames.append(read.frame)
    assert frames[0].equals(frames[1])
    assert frames[0].select("node_type", "date").rows() == sorted(frames[0].select("node_type", "date").rows())
