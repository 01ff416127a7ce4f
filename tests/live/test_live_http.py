"""The live exporter's HTTP endpoint under hostile input and bursts, on free loopback ports.

Listen backlog, a bounded number of threads whatever slow clients do, only documented query
parameters, the cache behind every /metrics response, HEAD, 405 for other methods, and failed
basic auth logged and throttled per client address.
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from exporter.live import BasicAuth
from exporter.live.auth import AuthThrottle
from exporter.live.server import MetricsServer
from tests.live.test_live import linear_usage, started

METHODS_REFUSED = ("PUT", "POST", "DELETE", "TRACE", "OPTIONS", "PATCH", "CONNECT", "BREW")


def request(url: str, method: str = "GET", path: str = "/metrics", headers: dict | None = None,
            source: str | None = None) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class CountingCollector:
    """A real collector that counts how often the registry is rendered (it yields no metrics)."""

    def __init__(self) -> None:
        self.calls = 0

    def describe(self):
        return []

    def collect(self):
        self.calls += 1
        return iter(())


def test_listen_backlog_is_at_least_128():
    with started({"uc": (linear_usage(1), 60)}) as exporter:
        port = exporter.url.rsplit(":", 1)[1]
        line = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                              check=True).stdout.split()
        assert int(line[2]) >= 128, line  # Send-Q of a listening socket is its backlog


def test_head_is_get_without_a_body_and_other_methods_are_405_everywhere():
    with started({"uc": (linear_usage(1), 60)}) as exporter:
        for path in ("/", "/metrics"):
            status, headers, body = request(exporter.url, "GET", path)
            head_status, head_headers, head_body = request(exporter.url, "HEAD", path)
            assert (status, head_status, head_body) == (200, 200, b"")
            assert head_headers["Content-Type"] == headers["Content-Type"]
            assert int(head_headers["Content-Length"]) == len(body)
            for method in METHODS_REFUSED:
                status, headers, _ = request(exporter.url, method, path)
                assert (status, headers.get("Allow")) == (405, "GET, HEAD"), (method, path)
        assert request(exporter.url, "PUT", "/nothing")[0] == 404


def test_only_the_documented_name_filter_is_accepted_as_query_parameter():
    with started({"uc": (linear_usage(3), 60)}) as exporter:
        status, _, body = request(exporter.url, path="/metrics?name[]=openstack_usage_up")
        assert status == 200
        names = {line.split("{")[0].split()[0] for line in body.decode().splitlines() if not line.startswith("#")}
        assert names == {"openstack_usage_up"}
        encoded = "/metrics?name%5B%5D=openstack_usage_nodes&name%5B%5D=openstack_usage_up"
        assert {line.split("{")[0] for line in request(exporter.url, path=encoded)[2].decode().splitlines()
                if not line.startswith("#")} == {"openstack_usage_nodes", "openstack_usage_up"}
        for path in ("/metrics?foo=1", "/metrics?name[]=openstack_usage_up&debug=1", "/metrics?name=x",
                     "/?x=1", "/metrics?" + "&".join(f"name[]=n{i}" for i in range(200))):
            status, headers, body = request(exporter.url, path=path)
            assert status == 400 and b"name[]" in body, path


def test_every_metrics_response_comes_from_the_cache_also_with_a_filter_and_head():
    with started({"uc": (linear_usage(1), 60)}) as exporter:
        counter = CountingCollector()
        exporter.registry.register(counter)
        exporter.refreshers["uc"].refresh_once()  # a new state: the next scrape renders once
        for path in ("/metrics", "/metrics?name[]=openstack_usage_up", "/metrics?name[]=openstack_usage_nodes"):
            first = request(exporter.url, path=path)[2]
            calls = counter.calls
            for method in ("GET", "HEAD", "GET"):
                assert request(exporter.url, method, path)[0] == 200
            assert counter.calls == calls, path  # no new rendering: served from the cache
            assert request(exporter.url, path=path)[2] == first


def test_slow_clients_do_not_create_threads_and_scrapes_still_get_through():
    with started({"uc": (linear_usage(1), 60)}) as exporter:
        assert request(exporter.url)[0] == 200
        threads_before = threading.active_count()
        host, port = exporter.url.removeprefix("http://").split(":")
        slow = []
        try:
            for index in range(300):  # slow loris: a request head that never ends
                sock = socket.create_connection((host, int(port)), timeout=5)
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" if index % 2 else b"GE")
                slow.append(sock)
            time.sleep(0.2)  # give a thread-per-connection server the time to start its threads
            assert threading.active_count() <= threads_before + 2
            status, _, body = request(exporter.url)
            assert status == 200 and b"openstack_usage_up" in body
        finally:
            for sock in slow:
                sock.close()


def test_a_request_head_that_does_not_arrive_in_time_is_dropped():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    server = MetricsServer(app, "127.0.0.1:0", header_timeout=0.3)
    server.start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        answer = sock.recv(1024)  # blocks until the server gives up on the head
        assert answer == b"" or answer.startswith(b"HTTP/1.0 408"), answer
        sock.close()
        host, port = "127.0.0.1", server.port
        assert request(f"http://{host}:{port}", path="/")[0] == 200
    finally:
        server.stop()


def test_twenty_concurrent_scrapers_all_succeed_with_identical_bodies():
    with started({"uc": (linear_usage(2), 60)}) as exporter:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: request(exporter.url), range(400)))
    assert {status for status, _, _ in results} == {200}
    assert len({body for _, _, body in results}) == 1


def test_failed_basic_auth_is_logged_and_throttled_per_client_address(caplog):
    auth = BasicAuth.from_password("prom", "correct horse")
    with started({"uc": (linear_usage(1), 60)}, auth=auth) as exporter, \
            caplog.at_level(logging.WARNING, logger="exporter.live"):
        statuses = [request(exporter.url, headers=basic("prom", f"guess{i}"), source="127.0.0.3")[0]
                    for i in range(12)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        status, headers, _ = request(exporter.url, headers=basic("prom", "correct horse"), source="127.0.0.3")
        assert status == 429 and int(headers["Retry-After"]) >= 1  # even the right password waits
        status, _, _ = request(exporter.url, headers=basic("prom", "correct horse"), source="127.0.0.4")
        assert status == 200  # another address is not affected
    failures = [r.getMessage() for r in caplog.records if "basic auth" in r.getMessage()]
    assert failures and all("127.0.0.3" in message for message in failures)
    assert "correct horse" not in caplog.text and "guess" not in caplog.text
    assert len(failures) <= 6  # logged, but not one line per attempt


def test_the_throttle_forgets_after_its_lockout_and_keeps_a_bounded_table():
    now = [0.0]
    throttle = AuthThrottle(free_failures=2, max_lockout=8.0, max_addresses=100, clock=lambda: now[0])
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0  # within the free failures
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 1
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 2  # doubling
    for _ in range(20):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 8  # capped
    now[0] += 8.5
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.succeeded("10.0.0.1")
    for index in range(10_000):
        throttle.failed(f"10.1.{index // 256}.{index % 256}")
    assert len(throttle) <= 100


@pytest.mark.parametrize("raw", [b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
                                 b"\x16\x03\x01garbage\r\n\r\n", b"GET\r\n\r\n"])
def test_malformed_or_oversized_requests_get_an_error_not_a_hang(raw):
    with started({"uc": (linear_usage(1), 60)}) as exporter:
        host, port = exporter.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            try:
                sock.sendall(raw)
                answer = sock.recv(1024)
            except ConnectionResetError:
                answer = b""
        assert answer == b"" or answer.split()[1] in (b"400", b"431"), answer
        assert request(exporter.url)[0] == 200
