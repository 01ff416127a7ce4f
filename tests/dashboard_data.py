"""A real Prometheus holding backfilled + scraped demo usage data, for the dashboard tests.

The data is a small hand-built timeline whose truth is known in closed form (so node-hours and
capacity can be checked without our reconstruction code): two sites, three node types, hourly
history ending more than 3 h ago, written as OpenMetrics following the series contract
(exporter.metrics names, pinned job/instance), turned into blocks by the real promtool, and a
live target serving the same families, scraped through the relabelling of etc/prometheus.yml.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB, FAMILIES
from tests import support

ROOT = Path(__file__).resolve().parents[1]
HOURS = 72
# site -> node_type -> (reservable nodes, on-demand nodes, gpus per node)
CAPACITY = {
    "alpha": {"compute_skylake": (16, 4, 0), "gpu_a100": (4, 0, 4)},
    "beta": {"compute_cascadelake": (10, 0, 0)},
}
PER_NODE = {"nodes": 1.0, "vcpus": 48.0, "memory_bytes": 192.0 * 2**30, "disk_bytes": 480.0 * 2**30}


def leaf_nodes(reservable: int, ondemand: int, hour: int) -> dict[tuple[str, str], float]:
    """Node counts per (pool, state) at ``hour``: a deterministic pattern whose states add up."""
    maintenance = 1 if reservable and hour % 24 in (2, 3) else 0
    committed = (hour * 7) % (reservable - maintenance + 1)
    active, stopped = committed // 2, committed // 4
    leaves = {
        ("reservable", "available"): reservable - maintenance - committed,
        ("reservable", "maintenance"): maintenance,
        ("reservable", "idle"): committed - active - stopped,
        ("reservable", "active"): active,
        ("reservable", "stopped"): stopped,
    }
    if ondemand:
        od_active, od_stopped = hour % (ondemand + 1), 0
        leaves |= {("ondemand", "available"): ondemand - od_active - od_stopped,
                   ("ondemand", "active"): od_active, ("ondemand", "stopped"): od_stopped}
    return {key: float(value) for key, value in leaves.items()}


def resource_values(nodes: float, resource: str, gpus_per_node: int) -> float:
    return nodes * gpus_per_node if resource == "gpus" else nodes * PER_NODE[resource]


def series_at(hour: int):
    """(labels, resource, value) for every leaf series at ``hour``."""
    for site, types in CAPACITY.items():
        for node_type, (reservable, ondemand, gpus) in types.items():
            for (pool, state), nodes in leaf_nodes(reservable, ondemand, hour).items():
                labels = {"site": site, "node_type": node_type, "pool": pool, "state": state}
                for family in FAMILIES:
                    yield labels, family, resource_values(nodes, family.resource, gpus)


def label_text(labels: dict[str, str]) -> str:
    pinned = {**labels, "job": DEFAULT_JOB, "instance": DEFAULT_INSTANCE}
    return ",".join(f'{k}="{v}"' for k, v in sorted(pinned.items()))


def openmetrics_text(first_ts: int) -> str:
    """The backfill: gauges and resource-second counters (Σ_{j<k} v_j × 3600), grouped by family,
    then series, then time, as the OpenMetrics spec asks."""
    gauges: dict[str, dict[str, list[str]]] = {}
    counters: dict[str, dict[str, list[str]]] = {}
    running: dict[tuple[str, str], float] = {}
    for hour in range(HOURS):
        ts = first_ts + hour * 3600
        for labels, family, value in series_at(hour):
            key = label_text(labels)
            gauges.setdefault(family.gauge, {}).setdefault(key, []).append(f"{family.gauge}{{{key}}} {value!r} {ts}")
            total = running.get((family.counter, key), 0.0)
            counters.setdefault(family.counter, {}).setdefault(key, []).append(
                f"{family.counter_sample}{{{key}}} {total!r} {ts}")
            running[(family.counter, key)] = total + value * 3600
    lines = []
    for family in FAMILIES:
        lines += [f"# HELP {family.gauge} {family.help}", f"# TYPE {family.gauge} gauge"]
        if family.gauge_unit:
            lines.append(f"# UNIT {family.gauge} {family.gauge_unit}")
        lines += [line for series in gauges[family.gauge].values() for line in series]
        lines += [f"# HELP {family.counter} {family.help}, integrated over time",
                  f"# TYPE {family.counter} counter", f"# UNIT {family.counter} seconds"]
        lines += [line for series in counters[family.counter].values() for line in series]
    return "\n".join(lines) + "\n# EOF\n"


class LiveCollector:
    """Serves hour ``HOURS`` of the pattern now, counters continuing the backfilled integral."""

    def __init__(self, first_ts: int) -> None:
        self.first_ts = first_ts

    def describe(self):
        return []

    def collect(self):
        now = time.time()
        live_from = self.first_ts + HOURS * 3600  # end of the last backfilled hour
        history = {}
        for hour in range(HOURS):
            for labels, family, value in series_at(hour):
                key = (family.counter, tuple(labels.values()))
                history[key] = history.get(key, 0.0) + value * 3600
        gauges = {f.gauge: GaugeMetricFamily(f.gauge, f.help, labels=list(labels_order())) for f in FAMILIES}
        counters = {f.counter: CounterMetricFamily(f.counter, f.help, labels=list(labels_order())) for f in FAMILIES}
        for labels, family, value in series_at(HOURS):
            values = list(labels.values())
            gauges[family.gauge].add_metric(values, value)
            counters[family.counter].add_metric(
                values, history[(family.counter, tuple(values))] + value * (now - live_from))
        yield from gauges.values()
        yield from counters.values()
        yield from health_families(now)


def labels_order() -> tuple[str, ...]:
    return ("site", "node_type", "pool", "state")


def health_families(now: float):
    up = GaugeMetricFamily("openstack_usage_up", "1 if the last refresh succeeded", labels=["site"])
    last = GaugeMetricFamily("openstack_usage_last_refresh_timestamp_seconds", "last refresh", labels=["site"])
    duration = GaugeMetricFamily("openstack_usage_refresh_duration_seconds", "refresh time", labels=["site"])
    errors = CounterMetricFamily("openstack_usage_refresh_errors", "failed refreshes", labels=["site", "kind"])
    for site in CAPACITY:
        up.add_metric([site], 1.0)
        last.add_metric([site], now - 5)
        duration.add_metric([site], 0.25)
        errors.add_metric([site, "timeout"], 0.0)
    yield from (up, last, duration, errors)


def scrape_config(target: str) -> str:
    """etc/prometheus.yml's exporter job (its relabelling pins job/instance) aimed at ``target``."""
    shipped = ROOT / "etc" / "prometheus.yml"
    job = {"job_name": DEFAULT_JOB,
           "relabel_configs": [{"target_label": "instance", "replacement": DEFAULT_INSTANCE}]}
    if shipped.exists():
        jobs = yaml.safe_load(shipped.read_text()).get("scrape_configs", [])
        job = next(j for j in jobs if j["job_name"] == DEFAULT_JOB)
    job = {**job, "scrape_interval": "1s", "scrape_timeout": "1s", "static_configs": [{"targets": [target]}]}
    job.pop("file_sd_configs", None)
    return yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})


@dataclass
class DemoData:
    prometheus: support.PrometheusServer
    history_start: int
    history_end: int
    live_start: float
    live_end: float

    @property
    def sites(self) -> set[str]:
        return set(CAPACITY)

    @property
    def node_types(self) -> set[str]:
        return {node_type for types in CAPACITY.values() for node_type in types}

    @staticmethod
    def total_nodes_at(_t: float) -> float:
        return float(sum(r + o for types in CAPACITY.values() for r, o, _ in types.values()))

    def node_hours_by_state(self, start: float, end: float) -> dict[str, float]:
        """Σ nodes × 1 h over the backfilled hours in [start, end)."""
        hours: dict[str, float] = {}
        for hour in range(HOURS):
            if start <= self.history_start + hour * 3600 < end:
                for labels, family, value in series_at(hour):
                    if family.resource == "nodes":
                        hours[labels["state"]] = hours.get(labels["state"], 0.0) + value
        return hours


@contextlib.contextmanager
def build_demo_data(tmp: Path, *, promtool: str):
    now = int(time.time())
    first_ts = (now // 3600 - 4 - (HOURS - 1)) * 3600  # last backfilled sample ≥ 4 h ago
    om_path = tmp / "history.om"
    om_path.write_text(openmetrics_text(first_ts))
    data_dir = tmp / "prometheus-data"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=87600h",
                    str(om_path), str(data_dir)], check=True, capture_output=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(first_ts))
    port = support.free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with support.PrometheusServer(scrape_config(f"127.0.0.1:{port}"), data_dir) as prom:
            live_start = wait_for_scrapes(prom, count=4)
            yield DemoData(prom, first_ts, first_ts + (HOURS - 1) * 3600, live_start, time.time())
    finally:
        server.shutdown()
        server.server_close()


def wait_for_scrapes(prom: support.PrometheusServer, *, count: int) -> float:
    """Wait until ``count`` scrapes of the exporter are stored; return the first one's time."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = prom.api("query", query=f'up{{job="{DEFAULT_JOB}"}}[1m]')["result"]
        points = result[0]["values"] if result else []
        if len(points) >= count and all(v == "1" for _, v in points):
            return float(points[0][0])
        time.sleep(0.5)
    raise RuntimeError("prometheus did not scrape the live target in 30 s")
