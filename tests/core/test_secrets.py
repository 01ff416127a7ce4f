"""Database passwords never reach a message, a log line or a file, whatever form the URL takes.

Forms: userinfo (percent-encoded or raw, with any character including ``@``), ``?password=`` /
``?passwd=`` in the query (pymysql takes both), and other drivers' secret parameters.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from exporter.db import masked, parse_url, redact
from exporter.errors import ConfigError
from tests import support

SECRET = "Tops3cret"


@pytest.mark.parametrize(("url", "expected"), [
    (f"mysql+pymysql://u:{SECRET}@db.example.org:3306/nova", "mysql+pymysql://u:***@db.example.org:3306/nova"),
    (f"mysql+pymysql://u:p@{SECRET}@db.example.org:3306/nova", "mysql+pymysql://u:***@db.example.org:3306/nova"),
    (f"mysql+pymysql://u:a@b:{SECRET}@db.example.org/", "mysql+pymysql://u:***@db.example.org/"),
    (f"mysql+pymysql://u:{SECRET}%40x@db.example.org/", "mysql+pymysql://u:***@db.example.org/"),
    (f"mysql+pymysql://u:{SECRET}/?#x@db.example.org/nova", "mysql+pymysql://u:***@db.example.org/nova"),
    (f"mysql+pymysql://u@db.example.org/?password={SECRET}", "mysql+pymysql://u@db.example.org/?password=***"),
    (f"mysql+pymysql://u@db.example.org/?charset=utf8&passwd={SECRET}",
     "mysql+pymysql://u@db.example.org/?charset=utf8&passwd=***"),
    (f"mysql+pymysql://db.example.org/?user=u&PASSWORD={SECRET}&password={SECRET}",
     "mysql+pymysql://db.example.org/?PASSWORD=***&password=***&user=u"),
    (f"postgresql://u@db.example.org/x?sslpassword={SECRET}", "postgresql://u@db.example.org/x?sslpassword=***"),
    (f"mysql+pymysql://u@db.example.org/?auth_token={SECRET}", "mysql+pymysql://u@db.example.org/?auth_token=***"),
])
def test_masked_hides_every_form_of_password(url, expected):
    assert masked(url) == expected
    assert SECRET not in masked(url)


def test_a_raw_at_sign_belongs_to_the_password_and_the_host_is_after_the_last_one():
    url = parse_url("mysql+pymysql://usage_ro:p@ss:w/rd@db.example.org:3306/nova?charset=utf8")
    assert (url.username, url.password, url.host, url.port, url.database) == \
        ("usage_ro", "p@ss:w/rd", "db.example.org", 3306, "nova")
    assert parse_url("sqlite:////tmp/a@b/site.sqlite").database == "/tmp/a@b/site.sqlite"


def test_an_unparsable_url_is_a_config_error_that_does_not_repeat_it():
    for url in (f"mysql+pymysql://u:{SECRET}@h:notaport/", f"no url {SECRET}"):
        with pytest.raises(ConfigError) as caught:
            parse_url(url)
        assert SECRET not in str(caught.value)


def test_redact_masks_urls_inside_free_text():
    text = (f"connecting to mysql+pymysql://u:p@{SECRET}@127.0.0.1:1/?password={SECRET}: cannot connect; "
            f"also sqlite:///x.sqlite and postgresql://a:{SECRET}@h/db.")
    redacted = redact(text)
    assert SECRET not in redacted
    assert "sqlite:///x.sqlite" in redacted and "cannot connect" in redacted


def _extract(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from exporter.cli import main; main()", "extract", "--db-url", url,
         "--out", str(out), "--quiet", *extra], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("form", [
    "mysql+pymysql://u@127.0.0.1:{port}/?password={secret}",
    "mysql+pymysql://u@127.0.0.1:{port}/?passwd={secret}",
    "mysql+pymysql://u:p@{secret}@127.0.0.1:{port}/",
    "mysql+pymysql://u:{secret}@127.0.0.1:notaport/",
])
def test_extract_errors_never_print_the_password(form, tmp_path):
    proc = _extract(form.format(port=support.free_port(), secret=SECRET), tmp_path)
    assert proc.returncode != 0
    assert SECRET not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.fixture
def user_with_at_password(db_prefix, mariadb_url):
    """A MariaDB user whose password has ``@``, ``:`` and ``/``, allowed to read one small database."""
    user, password = f"{db_prefix}pw", f"p@{SECRET}:x/y"
    root = sa.create_engine(mariadb_url)
    with root.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{db_prefix}nova`")
        conn.exec_driver_sql(f"CREATE TABLE `{db_prefix}nova`.services (id INT PRIMARY KEY, host VARCHAR(9))")
        for host in ("127.0.0.1", "localhost"):
            conn.exec_driver_sql(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
            conn.exec_driver_sql(f"GRANT SELECT ON `{db_prefix}nova`.* TO '{user}'@'{host}'")
    yield user, password
    with root.begin() as conn:
        for host in ("127.0.0.1", "localhost"):
            conn.exec_driver_sql(f"DROP USER '{user}'@'{host}'")
    root.dispose()


@pytest.mark.mariadb
@pytest.mark.parametrize("form", ["mysql+pymysql://{user}:{password}@127.0.0.1:3306/",
                                  "mysql+pymysql://{user}@127.0.0.1:3306/?password={password}"])
def test_a_real_extract_connects_and_writes_the_password_nowhere(form, user_with_at_password, db_prefix,
                                                                  tmp_path):
    user, password = user_with_at_password
    url = form.format(user=user, password=password)
    proc = _extract(url, tmp_path, "--db-prefix", db_prefix, "--snapshot-id", "s1")
    manifest = tmp_path / "default" / "s1" / "manifest.json"
    assert manifest.exists(), proc.stderr  # it connected: the snapshot (of absent tables) is written
    assert "access denied" not in proc.stderr and "cannot connect" not in proc.stderr
    written = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    for text in (proc.stdout + proc.stderr, written.decode("utf-8", "replace")):
        assert SECRET not in text
    assert "127.0.0.1:3306" in manifest.read_text()
