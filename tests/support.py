"""Helpers for tests that use real services: MariaDB, promtool, prometheus.

A missing service skips the test on a developer machine but FAILS it under ``CI=true``: CI must
never count a skipped service test as passing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

MARIADB_URL = os.environ.get("USAGE_EXPORTER_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip locally, fail in CI, when a real dependency is missing."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{what} is required under CI=true but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mariadb_available(url: str = MARIADB_URL) -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:
        return False


def drop_databases(prefix: str, url: str = MARIADB_URL) -> None:
    """Drop every database whose name starts with ``prefix`` (test clean-up)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        names = [row[0] for row in conn.exec_driver_sql("SHOW DATABASES")]
        for name in names:
            if name.startswith(prefix):
                conn.exec_driver_sql(f"DROP DATABASE `{name}`")
    engine.dispose()


def binary(name: str) -> str | None:
    return shutil.which(name)


class PrometheusServer:
    """A real ``prometheus`` on a free loopback port, stopped (and its data removed) on exit."""

    def __init__(self, config_text: str, data_dir: Path | None = None, *, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.mkdtemp(prefix="prom-test-")
        self.data_dir = Path(data_dir) if data_dir else Path(self._tmp) / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = Path(self._tmp) / "prometheus.yml"
        self.config_path.write_text(config_text)
        self.log_path = Path(self._tmp) / "prometheus.log"
        self.extra_args = extra_args
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "PrometheusServer":
        log = open(self.log_path, "w")
        self._proc = subprocess.Popen(
            [binary("prometheus") or "prometheus", f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.data_dir}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-admin-api", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready in 60 s")

    def __exit__(self, *exc) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def api(self, path: str, **params) -> dict:
        """GET ``/api/v1/<path>`` and return ``data`` (raises on an error status)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=60) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query failed: {body}")
        return body["data"]
