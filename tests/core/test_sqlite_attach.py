"""SQLite schema files are attached read-only whatever the configured database names contain."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from exporter.db import open_engine
from exporter.errors import DatabaseError


def _table_file(path, value: int = 7) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE instances (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO instances VALUES (?)", (value,))
    conn.close()


def _ids(path) -> list[int]:
    with sqlite3.connect(path) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM instances ORDER BY id")]
    conn.close()
    return ids


@pytest.mark.parametrize("crafted", ["x.sqlite?mode=rw#", "x.sqlite?mode=rwc&cache=shared#", "x.sqlite#"])
def test_a_crafted_database_name_cannot_open_a_file_writable(tmp_path, crafted):
    """The name lands in the ATTACH URI: it must stay a file name, never become URI parameters."""
    sqlite3.connect(tmp_path / "site.sqlite").close()
    _table_file(tmp_path / "x.sqlite")  # what the URI parameters would open read-write
    _table_file(tmp_path / f"{crafted}.sqlite", value=1)  # the file the name really names
    engine = open_engine(f"sqlite:///{tmp_path / 'site.sqlite'}", {"nova": crafted})
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM nova.instances").scalar() == 1
    with pytest.raises(sa.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO nova.instances VALUES (8)")
    assert _ids(tmp_path / "x.sqlite") == [7]
    assert _ids(tmp_path / f"{crafted}.sqlite") == [1]


def test_quotes_in_database_names_are_data_not_sql(tmp_path):
    sqlite3.connect(tmp_path / "site.sqlite").close()
    name = "it's \"quoted\""
    _table_file(tmp_path / f"{name}.sqlite")
    engine = open_engine(f"sqlite:///{tmp_path / 'site.sqlite'}", {"nova": name})
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM nova.instances").scalar() == 7


def test_the_main_file_is_read_only_even_with_uri_characters_in_its_directory(tmp_path):
    folder = tmp_path / "d#mode=rw"
    folder.mkdir()
    _table_file(folder / "site.sqlite")
    engine = open_engine(f"sqlite:///{folder / 'site.sqlite'}")
    with pytest.raises(sa.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO instances VALUES (8)")
    assert _ids(folder / "site.sqlite") == [7]


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a/b", ".."])
def test_database_names_that_are_paths_are_refused(tmp_path, name):
    sqlite3.connect(tmp_path / "site.sqlite").close()
    with pytest.raises(DatabaseError, match="not a plain file name"):
        open_engine(f"sqlite:///{tmp_path / 'site.sqlite'}", {"nova": name})
