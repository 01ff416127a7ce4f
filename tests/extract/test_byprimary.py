"""byprimary: a table copied in another key's order, read once by its primary key and put in that
key's ranges on disk. Against the real MariaDB (harden_* databases) where a server is involved."""

from __future__ import annotations

import gc
import uuid
from types import SimpleNamespace

import polars as pl
import pytest
import sqlalchemy as sa

from exporter.config import SiteConfig, prefixed_databases
from exporter.adapters.registry import declared_tables
from exporter.extract import fastread, tablecopy
from exporter.extract.byprimary import read_by_primary
from exporter.extract.copy import extract_snapshot
from exporter.layout import scan_tables
from tests import support

EXTRA = [s for s in declared_tables() if s.name == "nova.instance_extra"]


def _frames(*keys: list[str]):
    """``read`` for read_by_primary: one frame of rows per list of keys, whatever ranges are asked."""
    def read(ranges, query):
        for number, batch in enumerate(keys):
            yield (number,), True, pl.DataFrame({"instance_uuid": batch, "id": list(range(len(batch)))})
    return read


TABLE = SimpleNamespace(key="instance_uuid", primary="id", query=lambda *bounds, **how: ("", True))


def test_a_key_below_the_first_range_goes_to_the_first_range(tmp_path):
    """A row inserted after the key ranges were found may lie below the first one: the nearest
    range is the first (the old code's unsigned 0 - 1 wrapped to the last)."""
    ranges = [("b", "d", "z"), ("d", None, "z")]
    spilled = read_by_primary(TABLE, ranges, [(0,)], _frames(["c", "a", "e", "d"]), tmp_path)
    got = {bounds: sorted(rows["instance_uuid"]) for bounds, _, rows in spilled}
    assert got == {ranges[0]: ["a", "c"], ranges[1]: ["d", "e"]}
    assert not list(tmp_path.iterdir())  # read back: nothing left on disk


def test_keys_that_are_no_text_are_not_put_in_ranges_here(tmp_path):
    assert read_by_primary(TABLE, [(1, 5, 9), (5, None, 9)], [(0,)], _frames(["a"]), tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_spilled_ranges_closed_before_reading_leave_nothing(tmp_path):
    spilled = read_by_primary(TABLE, [("a", None, "z")], [(0,)], _frames(["b"]), tmp_path)
    assert list(tmp_path.iterdir())
    spilled.close()
    assert not list(tmp_path.iterdir())


@pytest.fixture
def harden_prefix(mariadb_url):
    prefix = f"harden_{uuid.uuid4().hex[:8]}_"
    yield prefix
    support.drop_databases(prefix, mariadb_url)


def _site(prefix: str) -> SiteConfig:
    return SiteConfig(name="f", display_name="f", db_url=support.MARIADB_URL, databases=prefixed_databases(prefix))


def _instance_extra(prefix: str, key_type: str, keys: list) -> None:
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{prefix}nova`")
        conn.exec_driver_sql(f"CREATE TABLE `{prefix}nova`.instance_extra (id INT PRIMARY KEY, instance_uuid "
                             f"{key_type} NOT NULL, flavor TEXT, deleted_at DATETIME, deleted INT, KEY (instance_uuid))")
        conn.exec_driver_sql(f"INSERT INTO `{prefix}nova`.instance_extra VALUES " + ", ".join(
            f"({number}, '{key}', 'f{number}', '2020-01-01', 0)" for number, key in enumerate(keys)))
    root.dispose()


@pytest.mark.mariadb
def test_an_integer_key_is_read_by_key_ranges_mariadb(harden_prefix, tmp_path):
    """instance_uuid stored as an integer (not the primary key): no crash (the old code built a
    text series of the integer bounds outside its fallback), the same file as the SQLAlchemy reader's."""
    _instance_extra(harden_prefix, "INT", [(number * 7919) % 101 for number in range(30)])
    site = _site(harden_prefix)
    slow = extract_snapshot(site, tmp_path / "slow", snapshot_id="s", sources=EXTRA, batch_rows=4,
                            fast_reads=False).manifest["tables"]["nova.instance_extra"]
    fast = extract_snapshot(site, tmp_path / "fast", snapshot_id="s", sources=EXTRA,
                            batch_rows=4).manifest["tables"]["nova.instance_extra"]
    assert fast["reader"] == "connectorx" and (fast["sha256"], fast["rows"]) == (slow["sha256"], slow["rows"]) \
        and fast["rows"] == 30


@pytest.mark.mariadb
def test_a_failed_stream_leaves_no_spill_directory_behind_mariadb(harden_prefix, tmp_path, monkeypatch):
    """The stream fails after the table was put in key ranges on disk; the SQLAlchemy reader then
    copies it, and by then the spill directory is gone (the old code left it to the garbage collector,
    switched off here so the test is exact)."""
    _instance_extra(harden_prefix, "VARCHAR(36)", [f"{number * 7919 % 65536:04x}-{number:04x}" for number in range(30)])

    def failing_range(*args, **kwargs):
        raise OSError("the range failed")

    spilled_at_slow_read = []
    real_slow = tablecopy.read_table_slow

    def slow(*args, **kwargs):
        spilled_at_slow_read.extend(tmp_path.rglob(".by-primary*"))
        return real_slow(*args, **kwargs)

    monkeypatch.setattr(fastread, "_range", failing_range)
    monkeypatch.setattr(tablecopy, "read_table_slow", slow)
    gc.disable()
    try:
        result = extract_snapshot(_site(harden_prefix), tmp_path, snapshot_id="s", sources=EXTRA, batch_rows=4)
    finally:
        gc.enable()
    entry = result.manifest["tables"]["nova.instance_extra"]
    assert entry["reader"] == "sqlalchemy" and "OSError" in entry["reader_fallback"], entry
    assert spilled_at_slow_read == []
    assert scan_tables(result.snapshot_dir)["nova.instance_extra"].collect().height == 30
