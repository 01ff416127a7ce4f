"""Live exporter machinery without a database: state, collector, refresh/backoff, HTTP server.

The usage computation is injected (a tiny hand-written function of time), so every expected
value below is computed by hand, not taken from the implementation.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.errors import DatabaseError
from exporter.live import BasicAuth, LiveExporter, Usage, UsageCollector
from exporter.live.refresh import SiteRefresher, backoff_delay
from exporter.live.server import parse_listen
from exporter.live.render import held_counters
from exporter.metrics import FAMILIES

T0 = dt.datetime(2026, 1, 1, 12, 0)


def usage_frame(rows: list[tuple[str, str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["node_type", "pool", "state", "resource", "value"], orient="row")


def linear_usage(nodes: float, origin: dt.datetime = T0):
    """compute(now): ``nodes`` active compute_haswell nodes, counter = nodes × seconds since origin."""
    def compute(now: dt.datetime) -> Usage:
        seconds = (now - origin).total_seconds()
        return Usage(at=now,
                     gauges=usage_frame([("compute_haswell", "reservable", "active", "nodes", nodes)]),
                     counters=usage_frame([("compute_haswell", "reservable", "active", "nodes", nodes * seconds)]))
    return compute


class Clock:
    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def samples(registry) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} from the text exposition."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def registry_for(*refreshers: SiteRefresher) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)  # would call collect() if describe() were missing
    registry.register(UsageCollector(lambda: [r.state for r in refreshers], version="9.9"))
    return registry


ACTIVE = (("node_type", "compute_haswell"), ("pool", "reservable"), ("site", "uc"), ("state", "active"))


def test_collector_publishes_usage_and_health_with_exact_labels_and_no_timestamps():
    clock = Clock(T0 + dt.timedelta(hours=2))
    refresher = SiteRefresher("uc", linear_usage(3), interval=60, clock=clock)
    assert refresher.refresh_once()
    registry = registry_for(refresher)
    values = samples(registry)
    assert values[("openstack_usage_nodes", ACTIVE)] == 3
    assert values[("openstack_usage_node_seconds_total", ACTIVE)] == 3 * 7200
    assert values[("openstack_usage_up", (("site", "uc"),))] == 1
    assert values[("openstack_usage_exporter_build_info", (("version", "9.9"),))] == 1
    assert values[("openstack_usage_refresh_errors_total", (("kind", "timeout"), ("site", "uc")))] == 0
    assert ("openstack_usage_last_refresh_timestamp_seconds", (("site", "uc"),)) in values
    text = generate_openmetrics(registry).decode()
    usage_lines = [line for line in text.splitlines() if line.startswith("openstack_usage_node")]
    assert usage_lines and all(len(line.split(" ")) == 2 for line in usage_lines)  # name{labels} value: no ts
    assert "_created" not in text and "job=" not in text and "instance=" not in text
    for family in FAMILIES:
        assert f"# TYPE {family.gauge} gauge" in text and f"# TYPE {family.counter} counter" in text


def test_site_without_a_good_refresh_shows_up_zero_and_no_usage():
    refresher = SiteRefresher("down", linear_usage(1), interval=60)
    values = samples(registry_for(refresher))
    assert values[("openstack_usage_up", (("site", "down"),))] == 0
    assert not [key for key in values if key[0] == "openstack_usage_nodes"]


def test_describe_returns_nothing_so_registration_does_not_collect():
    calls = []
    UsageCollector(lambda: calls.append(1) or [])
    registry = CollectorRegistry(auto_describe=True)
    registry.register(UsageCollector(lambda: calls.append(1) or []))
    assert calls == []


def test_counters_hold_instead_of_decreasing_and_vanished_series_keep_their_value():
    previous = usage_frame([("a", "ondemand", "active", "nodes", 100.0), ("b", "ondemand", "active", "nodes", 5.0)])
    computed = usage_frame([("a", "ondemand", "active", "nodes", 90.0), ("c", "ondemand", "active", "nodes", 1.0)])
    published, held = held_counters(previous, computed)
    assert dict(zip(published["node_type"], published["value"])) == {"a": 100.0, "b": 5.0, "c": 1.0}
    assert held == 2
    later = usage_frame([("a", "ondemand", "active", "nodes", 120.0)])
    published, held = held_counters(published, later)
    assert dict(zip(published["node_type"], published["value"])) == {"a": 120.0, "b": 5.0, "c": 1.0}


def test_backoff_doubles_from_one_second_and_is_capped_at_the_refresh_interval():
    assert [backoff_delay(n, interval=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def failing_then(compute, failures: list[BaseException]):
    def wrapped(now):
        if failures:
            raise failures.pop(0)
        return compute(now)
    return wrapped


def test_failures_keep_last_values_count_by_kind_log_once_per_kind_and_recover(caplog):
    clock = Clock(T0 + dt.timedelta(seconds=100))
    failures = []
    refresher = SiteRefresher("uc", failing_then(linear_usage(2), failures), interval=60, clock=clock)
    assert refresher.refresh_once()
    secret = "s3cr3t-pass"
    failures += [DatabaseError("site uc: access denied (check the user and password)", kind="auth_error")] * 3
    failures += [DatabaseError("site uc: query timed out", kind="timeout")]
    with caplog.at_level(logging.INFO, logger="exporter.live"):
        clock.now += dt.timedelta(seconds=100)
        results = [refresher.refresh_once() for _ in range(4)]
        registry = registry_for(refresher)
        during = samples(registry)
        assert refresher.refresh_once()
    assert results == [False] * 4
    assert during[("openstack_usage_up", (("site", "uc"),))] == 0
    assert during[("openstack_usage_nodes", ACTIVE)] == 2  # last good values still served
    assert during[("openstack_usage_node_seconds_total", ACTIVE)] == 200
    assert during[("openstack_usage_refresh_errors_total", (("kind", "auth_error"), ("site", "uc")))] == 3
    assert during[("openstack_usage_refresh_errors_total", (("kind", "timeout"), ("site", "uc")))] == 1
    after = samples(registry)
    assert after[("openstack_usage_up", (("site", "uc"),))] == 1
    assert after[("openstack_usage_node_seconds_total", ACTIVE)] == 400
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 3, lines  # auth once, timeout once, recovery once
    assert "auth_error" in lines[0] and "timeout" in lines[1] and "recovered" in lines[2]
    assert all(secret not in line and "Traceback" not in line for line in lines)
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.INFO)


def test_an_unexpected_exception_becomes_a_compute_error_not_a_crash():
    refresher = SiteRefresher("uc", failing_then(linear_usage(1), [KeyError("node_type")]), interval=60)
    assert not refresher.refresh_once()
    assert dict(refresher.state.errors)["compute_error"] == 1
    assert refresher.refresh_once()


def test_one_failing_site_does_not_affect_another():
    good = SiteRefresher("good", linear_usage(1), interval=60, clock=Clock(T0 + dt.timedelta(seconds=10)))
    bad = SiteRefresher("bad", failing_then(linear_usage(1), [DatabaseError("x", kind="connection_error")]),
                        interval=60)
    good.refresh_once(), bad.refresh_once()
    values = samples(registry_for(good, bad))
    assert values[("openstack_usage_up", (("site", "good"),))] == 1
    assert values[("openstack_usage_up", (("site", "bad"),))] == 0
    good_active = tuple(sorted({**dict(ACTIVE), "site": "good"}.items()))
    assert values[("openstack_usage_nodes", good_active)] == 1


def test_listen_addresses():
    assert parse_listen(":9188") == ("0.0.0.0", 9188)
    assert parse_listen("127.0.0.1:1") == ("127.0.0.1", 1)
    assert parse_listen("[::1]:9188") == ("::1", 9188)
    with pytest.raises(Exception, match="HOST"):
        parse_listen("9188x")


def fetch(url: str, *, auth: tuple[str, str] | None = None, context=None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


@contextlib.contextmanager
def started(computations, clock: Clock | None = None, **kwargs) -> Iterator[LiveExporter]:
    """A running exporter on a free loopback port whose sites have had their first refresh."""
    with LiveExporter(computations, listen="127.0.0.1:0", clock=clock or Clock(T0 + dt.timedelta(seconds=60)),
                      **kwargs) as exporter:
        for refresher in exporter.refreshers.values():
            deadline = dt.datetime.now() + dt.timedelta(seconds=10)
            while refresher.refreshes == 0 and dt.datetime.now() < deadline:
                threading.Event().wait(0.01)
        yield exporter


def test_http_landing_page_metrics_and_404():
    with started({"uc": (linear_usage(4), 60)}) as exporter:
        status, ctype, body = fetch(exporter.url + "/")
        assert status == 200 and "text/html" in ctype and b'href="metrics"' in body
        status, ctype, body = fetch(exporter.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert b'openstack_usage_nodes{node_type="compute_haswell",pool="reservable",site="uc",state="active"} 4.0' \
            in body
        assert fetch(exporter.url + "/other")[0] == 404


def test_basic_auth_rejects_missing_or_wrong_credentials():
    auth = BasicAuth.from_password("prom", "correct horse")
    with started({"uc": (linear_usage(1), 60)}, auth=auth) as exporter:
        assert fetch(exporter.url + "/metrics")[0] == 401
        assert fetch(exporter.url + "/metrics", auth=("prom", "wrong"))[0] == 401
        assert fetch(exporter.url + "/", auth=("other", "correct horse"))[0] == 401
        status, _, body = fetch(exporter.url + "/metrics", auth=("prom", "correct horse"))
        assert status == 200 and b"openstack_usage_up" in body


def test_tls(tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    with started({"uc": (linear_usage(1), 60)}, tls_cert=str(cert), tls_key=str(key)) as exporter:
        assert exporter.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        status, _, body = fetch(exporter.url + "/metrics", context=context)
        assert status == 200 and b"openstack_usage_up" in body
        with pytest.raises(OSError):  # plain HTTP to the TLS port gets no answer
            fetch(exporter.url.replace("https", "http") + "/metrics")


def test_fifty_concurrent_scrapes_while_a_refresh_is_running_all_succeed():
    in_refresh, release = threading.Event(), threading.Event()
    calls = []

    def slow_second_refresh(now):
        calls.append(now)
        if len(calls) == 2:
            in_refresh.set()
            release.wait(30)
        return linear_usage(5)(now)

    with started({"uc": (slow_second_refresh, 0.05)}) as exporter:
        assert in_refresh.wait(10)
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda _: fetch(exporter.url + "/metrics"), range(50)))
        release.set()
    assert [status for status, _, _ in results] == [200] * 50
    assert all(b'state="active"} 5.0' in body for _, _, body in results)


def test_cached_exposition_follows_new_refreshes_and_negotiates_format_and_gzip():
    import gzip

    clock = Clock(T0 + dt.timedelta(seconds=60))
    with started({"uc": (linear_usage(2), 60)}, clock=clock) as exporter:
        first = fetch(exporter.url + "/metrics")[2]
        assert fetch(exporter.url + "/metrics")[2] == first
        clock.now = T0 + dt.timedelta(seconds=100)
        exporter.refreshers["uc"].refresh_once()  # a new state must show at once, not the cached bytes
        assert b'node_seconds_total{node_type="compute_haswell",pool="reservable",site="uc",state="active"} 200.0' \
            in fetch(exporter.url + "/metrics")[2]
        request = urllib.request.Request(exporter.url + "/metrics", headers={
            "Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(response.read()).endswith(b"# EOF\n")
