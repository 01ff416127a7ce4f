"""Database layer: masking, error classification, read-only engines, logical schema names."""

from __future__ import annotations

import sqlite3

import pymysql
import pytest
import sqlalchemy as sa

from exporter.db import classify, masked, open_engine
from exporter.errors import DatabaseError
from tests import support


def test_masked_hides_password_and_survives_garbage():
    assert masked("mysql+pymysql://u:s3cret@h:3306/") == "mysql+pymysql://u:***@h:3306/"
    assert masked("::not a url::") == "<unparsable database URL>"


@pytest.mark.parametrize(("code", "message", "kind"), [
    (1045, "Access denied for user 'u'@'h' (using password: YES)", "auth_error"),
    (1044, "Access denied for user 'u'@'h' to database 'nova'", "permission_denied"),
    (1142, "SELECT command denied to user 'u'@'h' for table 'leases'", "permission_denied"),
    (1146, "Table 'nova.x' doesn't exist", "missing"),
    (2003, "Can't connect to MySQL server on 'db' (timed out)", "connection_error"),
    (2013, "Lost connection to MySQL server during query (timed out)", "timeout"),
    (1064, "You have an error in your SQL syntax", "query_error"),
])
def test_classify_uses_driver_codes_first(code, message, kind):
    error = sa.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, message))
    result = classify(error, what="nova.x")
    assert isinstance(result, DatabaseError) and result.kind == kind
    assert str(result).startswith("nova.x: ")


def test_classify_scrubs_passwords_from_driver_messages(monkeypatch):
    monkeypatch.setenv("NOVA_DB_PASSWORD", "hunter22")
    error = sa.exc.OperationalError("", {}, pymysql.err.OperationalError(1064, "near 'hunter22' at line 1"))
    assert "hunter22" not in str(classify(error, what="q"))


def test_sqlite_schemas_attach_under_logical_names_read_only(tmp_path):
    sqlite3.connect(tmp_path / "site.sqlite").close()
    with sqlite3.connect(tmp_path / "t1_nova.sqlite") as conn:
        conn.execute("CREATE TABLE instances (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO instances VALUES (7)")
    engine = open_engine(f"sqlite:///{tmp_path / 'site.sqlite'}", {"nova": "t1_nova"})
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM nova.instances").scalar() == 7
    with pytest.raises(sa.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO nova.instances VALUES (8)")


def test_unsupported_and_missing_databases_are_clear_errors(tmp_path):
    with pytest.raises(DatabaseError, match="unsupported database URL"):
        open_engine("postgresql://u:pw@h/db")
    with pytest.raises(DatabaseError, match="does not exist"):
        open_engine(f"sqlite:///{tmp_path / 'absent.sqlite'}")


@pytest.mark.mariadb
def test_mariadb_physical_names_read_only_and_utc_session(db_prefix):
    root = sa.create_engine(support.MARIADB_URL)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{db_prefix}blazar`")
        conn.exec_driver_sql(f"CREATE TABLE `{db_prefix}blazar`.t (id INT PRIMARY KEY, at TIMESTAMP NULL)")
        conn.exec_driver_sql("SET time_zone = '+02:00'")
        conn.exec_driver_sql(f"INSERT INTO `{db_prefix}blazar`.t VALUES (1, '2020-01-01 02:00:00')")
    root.dispose()
    engine = open_engine(support.MARIADB_URL, {"blazar": f"{db_prefix}blazar"})
    table = sa.Table("t", sa.MetaData(), sa.Column("id"), sa.Column("at"), schema="blazar")
    with engine.connect() as conn:
        # a TIMESTAMP written at +02:00 reads back in UTC
        assert str(conn.execute(sa.select(sa.cast(table.c.at, sa.String))).scalar()) == "2020-01-01 00:00:00"
    with pytest.raises(sa.exc.DBAPIError, match="READ ONLY"), engine.begin() as conn:
        conn.execute(table.insert().values(id=2))
    engine.dispose()
