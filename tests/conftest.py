"""Shared fixtures. Service-backed fixtures skip locally and fail under CI=true when missing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from exporter.engine.plans import prefer_in_memory_engine
from tests import support

prefer_in_memory_engine()  # as the command line does: library calls and CLI runs here give the same bytes


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    support.require(support.mariadb_available(), "MariaDB at 127.0.0.1:3306")
    return support.MARIADB_URL


@pytest.fixture
def db_prefix(mariadb_url):
    """A unique database-name prefix on the MariaDB server, dropped after the test."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield prefix
    support.drop_databases(prefix, mariadb_url)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = support.binary("promtool")
    support.require(path is not None, "promtool (apt package prometheus)")
    return path


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    path = support.binary("prometheus")
    support.require(path is not None, "prometheus (apt package prometheus)")
    return path


@pytest.fixture(scope="session")
def victoria_bin() -> str:
    path = support.binary("victoria-metrics")
    support.require(path is not None, "victoria-metrics (apt package victoria-metrics)")
    return path


@pytest.fixture(scope="session")
def tiny_site(tmp_path_factory, promtool):
    """A generated 3-host, 5-week SQLite site with a clean snapshot, reconstruction and backfill."""
    from tests.core.crash_support import build_tiny_site

    return build_tiny_site(tmp_path_factory.mktemp("tiny-site"), promtool)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the golden files (tests/*/golden/) from the current output; review the diff")


@pytest.fixture
def golden(request):
    """``golden(path, data)``: assert ``data`` equals the file's bytes (``--update-golden`` rewrites it)."""
    update = request.config.getoption("--update-golden")

    def check(path: Path, data: bytes) -> None:
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert path.exists(), f"{path} is missing: run pytest --update-golden once and review it"
        assert data == path.read_bytes(), f"output differs from {path} (pytest --update-golden rewrites it)"

    return check





SERVICE_MARKERS = {"promtool": "prometheus", "prometheus_bin": "prometheus", "mariadb_url": "mariadb",
                   "victoria_bin": "victoriametrics"}


def pytest_collection_modifyitems(config, items):
    """Every test that uses a service fixture carries that service's marker (so -m selects it)."""
    missing = [f"{item.nodeid} (uses {name}: mark it {marker})" for item in items
               for name, marker in SERVICE_MARKERS.items()
               if name in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None]
    if missing:
        raise pytest.UsageError("service tests without their marker:\n  " + "\n  ".join(missing))
