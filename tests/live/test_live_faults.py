"""Live exporter faults against real MariaDB and a generated site, through the real pipeline.

"Database down" and "database slow" are a TCP proxy between the exporter and the shared MariaDB
(the server itself is never stopped: other test runs use it). Wrong credentials are a MariaDB user
created for the test and configured with the wrong password.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from exporter.live import LiveExporter
from exporter.live.refresh import SiteRefresher
from exporter.live.source import LiveSite
from tests.live.support import TcpProxy, scrape, site_config, site_ending_now, usage_samples, wait_for

pytestmark = pytest.mark.mariadb

UP = ("openstack_usage_up", (("site", "synthetic"),))


def errors(samples: dict, kind: str) -> float:
    return samples[("openstack_usage_refresh_errors_total", (("kind", kind), ("site", "synthetic")))]


@pytest.fixture(scope="module")
def generated(mariadb_url, tmp_path_factory):
    with site_ending_now(mariadb_url, tmp_path_factory.mktemp("truth"), hosts=6, days=30) as site:
        yield site


@pytest.fixture
def proxy():
    proxy = TcpProxy(("127.0.0.1", 3306)).start()
    yield proxy
    proxy.stop()


def proxied_exporter(generated, proxy, **site_options) -> LiveExporter:
    site = site_config(generated, f"mysql+pymysql://root@127.0.0.1:{proxy.port}/", **site_options)
    return LiveExporter({site.name: (LiveSite(site), site.refresh_interval)}, listen="127.0.0.1:0",
                        first_backoff=0.2)


def test_database_down_serves_last_values_logs_once_and_recovers(generated, proxy, caplog):
    caplog.set_level(logging.INFO, logger="exporter.live")
    with proxied_exporter(generated, proxy) as exporter:
        metrics = exporter.url + "/metrics"
        wait_for(lambda: scrape(metrics)[UP] == 1, what="first good refresh")
        proxy.stop()
        wait_for(lambda: scrape(metrics)[UP] == 0, what="up 0 after the database went away")
        down = scrape(metrics)
        wait_for(lambda: errors(scrape(metrics), "connection_error") >= 3, what="several failed retries")
        still_down = scrape(metrics)
        assert usage_samples(down) and usage_samples(still_down) == usage_samples(down)  # last good values
        proxy.start()
        wait_for(lambda: scrape(metrics)[UP] == 1, what="recovery after the database came back")
        after = scrape(metrics)
    assert set(usage_samples(after)) == set(usage_samples(down))
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    failures = [line for line in lines if "refresh failed" in line]
    assert len(failures) == 1 and "connection_error" in failures[0], lines
    assert sum("recovered" in line for line in lines) == 1
    assert not any(record.exc_info for record in caplog.records if record.levelno >= logging.INFO)


@pytest.fixture
def mariadb_user(mariadb_url, generated):
    """A read-only MariaDB user with a known password on the generated databases; dropped after."""
    user, password = f"live_{uuid.uuid4().hex[:8]}", "Right-pass-4821"
    admin = sa.create_engine(mariadb_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        for physical in generated.databases.values():
            conn.exec_driver_sql(f"GRANT SELECT ON `{physical}`.* TO '{user}'@'%%'")
    yield user, password
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
    admin.dispose()


def test_wrong_password_is_an_auth_error_without_the_password_anywhere(generated, mariadb_user, caplog):
    user, password = mariadb_user
    wrong = "Wrong-pass-9137"
    caplog.set_level(logging.INFO, logger="exporter.live")
    bad = SiteRefresher("synthetic", LiveSite(site_config(
        generated, f"mysql+pymysql://{user}:{quote(wrong)}@127.0.0.1:3306/")), interval=1)
    good = SiteRefresher("synthetic", LiveSite(site_config(
        generated, f"mysql+pymysql://{user}:{quote(password)}@127.0.0.1:3306/")), interval=1)
    assert not bad.refresh_once() and not bad.refresh_once()
    assert dict(bad.state.errors)["auth_error"] == 2 and not bad.state.up
    assert good.refresh_once(), "the same user with the right password (SELECT only) must work"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "auth_error" in logged and wrong not in logged and password not in logged
    assert sum("refresh failed" in record.getMessage() for record in caplog.records) == 1


def test_a_query_slower_than_the_timeout_is_a_timeout_and_recovers(generated, proxy, caplog):
    caplog.set_level(logging.INFO, logger="exporter.live")
    with proxied_exporter(generated, proxy, query_timeout=1.0) as exporter:
        metrics = exporter.url + "/metrics"
        wait_for(lambda: scrape(metrics)[UP] == 1, what="first good refresh")
        proxy.delay = 2.5  # every answer from the server now arrives after the 1 s timeout
        wait_for(lambda: errors(scrape(metrics), "timeout") >= 1, timeout=60, what="a timeout")
        assert scrape(metrics)[UP] == 0
        proxy.delay = 0.0
        wait_for(lambda: scrape(metrics)[UP] == 1, timeout=60, what="recovery when the server is fast again")
    assert any("timeout" in r.getMessage() and "refresh failed" in r.getMessage() for r in caplog.records)


def test_fifty_concurrent_scrapes_while_a_real_refresh_runs_all_succeed(generated, proxy):
    site = site_config(generated, f"mysql+pymysql://root@127.0.0.1:{proxy.port}/", query_timeout=30.0)
    live = LiveSite(site, full_reload_interval=0)  # every refresh re-reads every table
    refreshing = threading.Event()

    def compute(now):
        refreshing.set()
        try:
            return live(now)
        finally:
            refreshing.clear()

    with LiveExporter({site.name: (compute, 0.01)}, listen="127.0.0.1:0") as exporter:
        metrics = exporter.url + "/metrics"
        wait_for(lambda: scrape(metrics)[UP] == 1, what="first good refresh")
        proxy.delay = 0.02  # slow the reads down so the refresh is surely running during the burst
        wait_for(refreshing.is_set, what="a refresh in progress")
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda _: scrape(metrics), range(50)))
        overlapped = refreshing.is_set()
        proxy.delay = 0.0
    assert len(results) == 50 and all(usage_samples(result) for result in results)
    assert all(result[UP] == 1 for result in results)
    assert overlapped
