"""Helpers for the live-exporter tests: a TCP proxy that can die or go slow, scraping, waiting."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families


class TcpProxy:
    """Forwards a free loopback port to ``upstream``; ``stop()`` is "the database went down".

    ``delay`` seconds are slept before each chunk sent back to the client (a slow database).
    ``start()`` after ``stop()`` listens on the same port again (the database came back).
    """

    def __init__(self, upstream: tuple[str, int], port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or _free_port()
        self.delay = 0.0
        self.accepted = 0  # connections accepted so far (e.g. scrapes through the proxy)
        self.hold = 0.0  # seconds to keep retrying a refused upstream before dropping the client
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and cut every open connection."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.accepted += 1
            server = self._connect_upstream()
            if server is None:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _connect_upstream(self) -> socket.socket | None:
        """A connection to the upstream; with ``hold`` seconds, retried that long (like a listening
        socket kept open across a restart by a supervisor: the client waits instead of failing)."""
        deadline = time.monotonic() + self.hold
        while True:
            try:
                return socket.create_connection(self.upstream, timeout=5)
            except OSError:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.05)

    def _pump(self, source: socket.socket, sink: socket.socket, to_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if to_client and self.delay:
                    time.sleep(self.delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url: str, timeout: float = 10) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted label items): value}`` from ``url``'s text exposition."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def served_series(samples: dict, prefix: str = "openstack_usage_") -> dict:
    """Every series a site's values make (usage, extra families, disabled hosts): not the self-metrics."""
    own = ("up", "last_refresh", "refresh_", "exporter_build", "counters_held")
    return {key: value for key, value in samples.items()
            if key[0].startswith(prefix) and not key[0][len(prefix):].startswith(own)}


def usage_samples(samples: dict, prefix: str = "openstack_usage_") -> dict:
    """Only the timeline's usage series (gauges and resource-seconds counters), not the
    self-metrics, the extra families (booked ahead, ...) nor the disabled-host gauge."""
    from exporter.metrics import EXTRA_FAMILIES

    own = ("up", "last_refresh", "refresh_", "exporter_build", "counters_held", "host_disabled")
    extra = {name for family in EXTRA_FAMILIES for name in (family.name, family.sample_name)}
    return {key: value for key, value in samples.items()
            if key[0].startswith(prefix) and not key[0][len(prefix):].startswith(own) and key[0] not in extra}


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def site_ending_now(url: str, truth_dir, *, hosts: int = 8, days: float = 60, seed: int = 7, kind: str = "baremetal"):
    """A generated site (no quirks) in MariaDB whose simulated end is close to the real now.

    The simulation starts ``days`` before now on a whole hour, so open leases and instances are
    open *now* and the live exporter sees a realistic present. Its seed is the first from ``seed``
    whose site has an instance (a container on an edge site). Databases are dropped on exit.
    ``kind``: exporter.sitegen's (``edge``: devices instead of hosts).
    """
    import datetime as dt
    import uuid

    from exporter.config import prefixed_databases
    from exporter.sitegen import generate_site
    from tests.support import drop_databases

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    start = (now - dt.timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    used = "zun.container" if kind == "edge" else "nova.instances"
    # the draw depends on the hour the simulation starts, and a small site's draw can hold no
    # instance at all (a test then fails by the clock): the first seed from ``seed`` whose site has
    # used something is taken, which is the same seed for the same hour
    for attempt in range(seed, seed + 20):
        prefix = f"t{uuid.uuid4().hex[:8]}_"
        try:
            generated = generate_site(url, hosts=hosts, years=days / 365, seed=attempt, start=start, quirks=set(),
                                      kind=kind, databases=prefixed_databases(prefix), truth_dir=truth_dir)
            if generated.row_counts.get(used, 0) > 0:
                yield generated
                return
        finally:
            drop_databases(prefix, url)
    raise AssertionError(f"no seed in {seed}..{seed + 19} gave a site with rows in {used}")


def site_config(generated, url: str, **overrides):
    """A SiteConfig for a generated site, with short intervals suited to tests."""
    from exporter.config import SiteConfig

    options = dict(name="synthetic", display_name="Synthetic", db_url=url, databases=generated.databases,
                   history_start=generated.start, refresh_interval=1.0, query_timeout=5.0)
    options.update(overrides)
    return SiteConfig(**options)
