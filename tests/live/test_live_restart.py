"""A restart of ``usage-exporter serve`` leaves no gap and no counter reset in what Prometheus scraped.

A real Prometheus scrapes a real ``serve`` process (free loopback ports) on a generated site in
MariaDB, through a TCP proxy that counts the scrapes and, like a listening socket a supervisor keeps
open across restarts (systemd socket activation), makes a scrape wait for the exporter instead of
failing while no process listens. Right after a scrape the exporter is stopped (SIGTERM to its pid)
and started again. The first answers of the restarted process must already hold the usage series
(the warm start, exporter.live.warm: a cold start serves none until it has read every table). Then every
series the exporter serves for the site (usage gauges and counters, booked ahead, disabled hosts; not
its self-metrics) has a sample at every scrape across the restart, every scrape succeeded (``up`` 1),
and no counter decreased (``resets`` 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from exporter.metrics import DEVICE_SECONDS, FAMILIES
from tests.live.support import TcpProxy, scrape, site_ending_now, usage_samples, wait_for
from tests.support import PrometheusServer, free_port

pytestmark = [pytest.mark.mariadb, pytest.mark.prometheus]

INTERVAL = 10  # seconds between scrapes
# every series of the site's values: not the self-metrics (refresh_duration_seconds, for one, is
# only known after the restarted process's first refresh)
SERVED = ("{__name__=~'openstack_usage_.+', "
          "__name__!~'openstack_usage_(up|last_refresh_.+|refresh_.+|exporter_build_info|counters_held)'}")
COUNTERS = tuple(f.counter_sample for f in FAMILIES) + (DEVICE_SECONDS.sample_name,)


def _start(config, port: int, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from exporter.cli import main; main()", "serve",
                             "--config", str(config), "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)


def _serves_usage(url: str) -> bool:
    try:
        return bool(usage_samples(scrape(url, timeout=2)))
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=60)


def _next_scrape(proxy: TcpProxy) -> None:
    seen = proxy.accepted
    wait_for(lambda: proxy.accepted > seen, timeout=3 * INTERVAL, what="a scrape")
    time.sleep(0.5)  # its answer (a few kB from memory) is sent


def test_restart_leaves_no_gap_and_no_counter_reset(mariadb_url, prometheus_bin, tmp_path):
    with site_ending_now(mariadb_url, tmp_path / "truth", hosts=5, days=10, seed=5) as generated:
        config = tmp_path / "sites.yaml"
        config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "sites": {"synthetic": {
            "db_url": mariadb_url, "databases": generated.databases, "refresh_interval": 1, "query_timeout": 10,
            "history_start": generated.start.strftime("%Y-%m-%d %H:%M:%S")}}}))
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        proxy = TcpProxy(("127.0.0.1", port)).start()
        proxy.hold = 8.0  # < the scrape timeout
        prom_config = {"global": {"scrape_interval": f"{INTERVAL}s", "scrape_timeout": "9s"},
                       "scrape_configs": [{"job_name": "usage",
                                           "static_configs": [{"targets": [f"127.0.0.1:{proxy.port}"]}]}]}
        with open(tmp_path / "exporter.log", "w") as log, PrometheusServer(yaml.safe_dump(prom_config)) as prom:
            first = _start(config, port, log)
            try:
                wait_for(lambda: _serves_usage(url), timeout=120, what="the exporter's first usage series")
                wait_for(lambda: (tmp_path / "data" / "synthetic" / "live-state" / "state.json").is_file(),
                         timeout=60, what="the saved live state")
                began = time.time()
                for _ in range(3):  # a few scrapes before the restart
                    _next_scrape(proxy)
                _stop(first)  # right after a scrape
                stopped_at = time.time()
                restarted_at = time.monotonic()
                second = _start(config, port, log)
            except BaseException:
                first.kill()
                raise
            try:
                wait_for(lambda: _serves_usage(url), timeout=60, what="usage series after the restart")
                serving_after = time.monotonic() - restarted_at
                for _ in range(3):  # a few scrapes after it
                    _next_scrape(proxy)
                end = time.time()
            finally:
                _stop(second)
                proxy.stop()
            window = f"{int(end - began) + INTERVAL}s"
            up = prom.api("query", query=f"up[{window}]", time=end)["result"]
            raw = prom.api("query", query=f"{SERVED}[{window}]", time=end)["result"]
            counters = sorted({series["metric"]["__name__"] for series in raw} & set(COUNTERS))
            resets = {name: prom.api("query", query=f"sum(resets({name}[{window}]))", time=end)["result"]
                      for name in counters}

    assert serving_after < INTERVAL + 8, f"the restarted exporter served after {serving_after:.1f} s"
    assert all(float(value) == 1 for _, value in up[0]["values"]), \
        f"a scrape failed: {up[0]['values']}, restart at {stopped_at}, serving {serving_after:.1f} s later"
    scrapes = [float(t) for t, _ in up[0]["values"]]
    assert len(scrapes) >= 6
    names = {series["metric"]["__name__"] for series in raw}
    assert {"openstack_usage_nodes", "openstack_usage_node_seconds_total", "openstack_usage_booked_ahead_nodes"} <= names
    before = max(t for t in scrapes if t < stopped_at)
    after = min(t for t in scrapes if t > stopped_at)
    at = {t: set() for t in scrapes}
    for series in raw:
        times = [float(t) for t, _ in series["values"]]
        run = scrapes[scrapes.index(times[0]):scrapes.index(times[-1]) + 1]
        assert times == run, f"gap in {series['metric']}: {times} of scrapes {scrapes}"  # (may start or end)
        for t in times:
            at[t].add(tuple(sorted(series["metric"].items())))
        if series["metric"]["__name__"].endswith("_total"):
            values = [float(v) for _, v in series["values"]]
            assert values == sorted(values), f"counter decreased in {series['metric']}"
    assert at[before] and at[before] <= at[after], "series served before the restart are missing after it"
    assert counters and all(float(result[0]["value"][1]) == 0 for result in resets.values()), resets
    print(f"restarted exporter served its first usage series {serving_after:.2f} s after the restart")

