"""Helpers for tests that use real services: MariaDB, promtool, prometheus, victoria-metrics.

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


def start_server(command: list[str], log_path: Path, ready_url: str, timeout: float = 60) -> subprocess.Popen:
    """Start a server (output to ``log_path``) and wait until ``ready_url`` answers 200."""
    process = subprocess.Popen(command, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{Path(command[0]).name} exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as resp:
                if resp.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"{Path(command[0]).name} did not become ready in {timeout:g} s")


def stop_server(process: subprocess.Popen | None) -> None:
    """Stop a server started by :func:`start_server`, by its pid (SIGTERM, then SIGKILL after 20 s)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        self._proc = start_server(
            [binary("prometheus") or "prometheus", f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.data_dir}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-admin-api", *self.extra_args],
            self.log_path, f"{self.url}/-/ready")
        return self

    def __exit__(self, *exc) -> None:
        stop_server(self._proc)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def api(self, path: str, **params) -> dict:
        """GET ``/api/v1/<path>`` and return ``data`` (raises on an error status)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=60) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query failed: {body}")
        return body["data"]


class VictoriaMetricsServer:
    """A real single-node ``victoria-metrics`` on a free loopback port with a temporary storage
    directory; stopped by its pid (and the directory removed) on exit."""

    def __init__(self, binary_path: str, *, retention: str = "100y", extra_args: tuple[str, ...] = ()):
        self.binary_path, self.retention, self.extra_args = binary_path, retention, extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.mkdtemp(prefix="vm-test-")
        self.log_path = Path(self._tmp) / "victoria-metrics.log"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "VictoriaMetricsServer":
        self._proc = start_server(
            [self.binary_path, f"-storageDataPath={self._tmp}/data", f"-httpListenAddr=127.0.0.1:{self.port}",
             f"-retentionPeriod={self.retention}", *self.extra_args], self.log_path, f"{self.url}/health")
        return self

    def __exit__(self, *exc) -> None:
        stop_server(self._proc)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def export(self, match: str) -> dict:
        """Raw samples: {sorted label items: [(epoch seconds, value), ...]} from /api/v1/export."""
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=60) as resp:
            lines = resp.read().decode().splitlines()
        series: dict = {}
        for line in lines:
            item = json.loads(line)
            points = series.setdefault(tuple(sorted(item["metric"].items())), [])
            points += [(t // 1000, float(v)) for t, v in zip(item["timestamps"], item["values"])]
        return {labels: sorted(points) for labels, points in series.items()}
