"""Backfilled blocks in a real Prometheus: every sample comes back, counters give resource-hours,
loading is reproducible, and a scraped live series with the same labels is the SAME series."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server

from exporter.backfill.blocks import backfill
from tests.backfill.timelines import LEAVES, SCALES, expected_value, synthetic_timeline, write_timeline
from tests.support import PrometheusServer, free_port

pytestmark = pytest.mark.prometheus

START = dt.datetime(2024, 1, 1)
DAYS = 40
NODE_TYPES = ("compute_skylake", "gpu_a100")
RESOURCES = tuple(SCALES)
NOW = dt.datetime(2030, 1, 1)
COUNTERS = {"openstack_usage_node_seconds_total": "nodes", "openstack_usage_vcpu_seconds_total": "vcpus",
            "openstack_usage_memory_byte_seconds_total": "memory_bytes",
            "openstack_usage_disk_byte_seconds_total": "disk_bytes", "openstack_usage_gpu_seconds_total": "gpus"}
REPO = Path(__file__).resolve().parents[2]


def epoch(moment: dt.datetime) -> int:
    return int((moment - dt.datetime(1970, 1, 1)).total_seconds())


def series_index(node_type: str, pool: str, state: str, resource: str) -> int:
    return (NODE_TYPES.index(node_type) * len(LEAVES) + LEAVES.index((pool, state))) * len(RESOURCES) \
        + RESOURCES.index(resource)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory, promtool):
    root = tmp_path_factory.mktemp("bf")
    frame = synthetic_timeline(start=START, hours=24 * DAYS, node_types=NODE_TYPES, resources=RESOURCES)
    result = backfill(write_timeline(frame, root / "timeline"), root / "out", blocks=True, promtool=promtool,
                      block_hours=162, now=NOW)
    assert len(result.files) > 3
    return result


def scrape_config(target: str) -> str:
    """The shipped etc/prometheus.yml, pointed at ``target`` and scraping every second."""
    config = yaml.safe_load((REPO / "etc" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s")
    config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
    return yaml.safe_dump(config)


def server_with_blocks(result, tmp_path: Path, target: str) -> PrometheusServer:
    data = tmp_path / "data"
    data.mkdir()
    for ulid in result.blocks:
        shutil.copytree(result.blocks_dir / ulid, data / ulid)
    return PrometheusServer(scrape_config(target), data)


def history(server: PrometheusServer, result, query: str, step: int, start: dt.datetime | None = None) -> dict:
    data = server.api("query_range", query=query, start=epoch(start or result.first_sample),
                      end=epoch(result.last_sample), step=step)
    return {tuple(sorted(s["metric"].items())): [(int(t), float(v)) for t, v in s["values"]] for s in data["result"]}


def check_gauges_and_counters(server: PrometheusServer, result) -> None:
    hours = (result.last_sample - START) // dt.timedelta(hours=1) + 1
    gauges = history(server, result, '{__name__=~"openstack_usage_[a-z_]+",__name__!~".*_total"}', 3600)
    counters = history(server, result, '{__name__=~"openstack_usage_[a-z_]+_total"}', 3600)
    assert len(gauges) == len(counters) == len(NODE_TYPES) * len(LEAVES) * len(RESOURCES)
    by_name = {f"openstack_usage_{r}": r for r in RESOURCES}
    for labels, points in gauges.items():
        meta = dict(labels)
        assert (meta["job"], meta["instance"], meta["site"]) == ("openstack-usage", "openstack-usage-exporter", "uc")
        resource = by_name[meta["__name__"]]
        index = series_index(meta["node_type"], meta["pool"], meta["state"], resource)
        expected = [(epoch(START) + 3600 * h, expected_value(h, index, SCALES[resource])) for h in range(hours)]
        assert_points(points, expected)
    for labels, points in counters.items():
        meta = dict(labels)
        resource = COUNTERS[meta["__name__"]]
        index = series_index(meta["node_type"], meta["pool"], meta["state"], resource)
        running, expected = 0.0, []
        for h in range(hours):
            expected.append((epoch(START) + 3600 * h, running))
            running += expected_value(h, index, SCALES[resource]) * 3600
        assert_points(points, expected)


def assert_points(points: list, expected: list) -> None:
    assert [t for t, _ in points] == [t for t, _ in expected]
    assert [v for _, v in points] == pytest.approx([v for _, v in expected], rel=1e-12)


def daily_node_hours(server: PrometheusServer, result) -> dict:
    return history(server, result, "increase(openstack_usage_node_seconds_total[1d]) / 3600", 86400,
                   start=START + dt.timedelta(days=1))


def test_history_in_prometheus_equals_the_timeline_and_is_one_series_with_live(backfilled, tmp_path):
    live_port = free_port()
    registry = CollectorRegistry()
    registry.register(LiveLike())
    httpd, thread = start_http_server(live_port, addr="127.0.0.1", registry=registry)
    try:
        with server_with_blocks(backfilled, tmp_path, f"127.0.0.1:{live_port}") as server:
            check_gauges_and_counters(server, backfilled)
            days = daily_node_hours(server, backfilled)
            assert len(days) == len(NODE_TYPES) * len(LEAVES)
            for labels, points in days.items():
                meta = dict(labels)
                index = series_index(meta["node_type"], meta["pool"], meta["state"], "nodes")
                for t, value in points:
                    day = (t - epoch(START)) // 86400 - 1
                    truth = sum(expected_value(h, index, 1.0) for h in range(24 * day, 24 * day + 24))
                    assert value == pytest.approx(truth, rel=1e-12, abs=1e-9)
            assert one_series_across_history_and_live(server)
    finally:
        httpd.shutdown()
        thread.join(timeout=5)


def one_series_across_history_and_live(server: PrometheusServer) -> bool:
    """The live scrape (pinned instance) and the backfill share one label set."""
    match = 'openstack_usage_nodes{node_type="gpu_a100",pool="reservable",state="active"}'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = server.api("query", query=match)["result"]
        if live:
            break
        time.sleep(0.5)
    assert live and live[0]["value"][1] == "7"
    everything = server.api("series", **{"match[]": match}, start=epoch(START), end=time.time() + 60)
    return len(everything) == 1 and everything[0]["instance"] == "openstack-usage-exporter"


def test_loading_the_same_blocks_twice_gives_identical_answers(backfilled, tmp_path):
    answers = []
    for attempt in ("first", "second"):
        (tmp_path / attempt).mkdir()
        with server_with_blocks(backfilled, tmp_path / attempt, "127.0.0.1:9") as server:
            answers.append((history(server, backfilled, "openstack_usage_vcpus", 3600),
                            history(server, backfilled, "openstack_usage_vcpu_seconds_total", 3600),
                            daily_node_hours(server, backfilled)))
    assert answers[0] == answers[1]
    assert len(answers[0][0]) == len(NODE_TYPES) * len(LEAVES)


class LiveLike:
    """Stands in for the live exporter: same family and labels, no job/instance, no timestamps."""

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily("openstack_usage_nodes", "Compute nodes",
                                   labels=["site", "node_type", "pool", "state"])
        family.add_metric(["uc", "gpu_a100", "reservable", "active"], 7.0)
        yield family

