"""A real Prometheus holding backfilled + scraped usage of two small generated sites, for the
dashboard tests: the product's own pipeline end to end.

generate_site (SQLite, no quirks, ending now) -> extract_snapshot -> reconstruct_into ->
backfill --blocks (real promtool) -> blocks in the Prometheus data dir; the live exporter serves
the same sites now and Prometheus scrapes it through the job/instance relabelling of
etc/prometheus.yml. Expectations come from the generator's truth and from the timeline files
(the backfill's input), never from what the dashboards return.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from exporter.backfill.blocks import backfill
from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.live import LiveExporter
from exporter.live.source import LiveSite
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_into
from exporter.sitegen import generate_site
from tests import support

ROOT = Path(__file__).resolve().parents[2]
SITES = {"alpha": 1, "beta": 2}  # generated sites -> generator seed
EDGE_SITE, EDGE_SEED, EDGE_DEVICES = "delta", 3, 6  # a generated CHI@Edge site: devices, no Nova
HOSTS = 6
DAYS = 20
# A hand-made site, history only: 4 nodes whose reservable "idle" leaf is -1 for some hours (as a
# reconstruction anomaly can make it), so its resource-seconds counter decreases there.
NEGATIVE_SITE = "gamma"
NEGATIVE_HOURS = range(30, 40)


def scrape_config(target: str) -> str:
    """etc/prometheus.yml's exporter job (its relabelling pins job/instance) aimed at ``target``."""
    shipped = yaml.safe_load((ROOT / "etc" / "prometheus.yml").read_text())
    job = next(j for j in shipped["scrape_configs"] if j["job_name"] == DEFAULT_JOB)
    job = {**job, "scrape_interval": "1s", "scrape_timeout": "1s", "static_configs": [{"targets": [target]}]}
    return yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})


def epoch(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.timezone.utc).timestamp())


@dataclass
class DemoData:
    prometheus: support.PrometheusServer
    history_start: int  # first backfilled sample (s)
    history_end: int  # last backfilled sample (s)
    live_start: float  # first scrape of the live exporter (s)
    live_end: float
    timeline: pl.DataFrame  # what the backfill read (all sites)
    truth: pl.DataFrame  # generator truth spans (all sites)
    exporter_url: str  # the live exporter serving SITES, with /explain over their reconstruct outputs
    edge_timeline: Path | None = None  # EDGE_SITE's device_timeline.parquet (what the backfill read)

    @property
    def sites(self) -> set[str]:
        return {*SITES, NEGATIVE_SITE, EDGE_SITE}

    @property
    def node_types(self) -> set[str]:
        return set(self.timeline["node_type"].unique())

    def truth_total_nodes(self, start: float, seconds: float) -> float:
        """Mean number of existing nodes over [start, start + seconds), from the truth."""
        lo, hi = (dt.datetime.fromtimestamp(x, dt.timezone.utc).replace(tzinfo=None) for x in (start, start + seconds))
        total = self.truth.filter(pl.col("level") == "total")
        overlap = (pl.min_horizontal(pl.col("end").fill_null(hi), pl.lit(hi))
                   - pl.max_horizontal("start", pl.lit(lo))).dt.total_seconds().clip(lower_bound=0)
        return total.select((pl.col("nodes") * overlap).sum()).item() / seconds

    def timeline_hours_by_state(self, start: float, end: float, *, site: str, resource: str = "nodes",
                                pool: str | None = None) -> dict[str, float]:
        """Σ value × 1 h over ``site``'s hourly timeline samples in [start, end), by state."""
        lo, hi = (dt.datetime.fromtimestamp(x, dt.timezone.utc).replace(tzinfo=None) for x in (start, end))
        rows = self.timeline.filter(pl.col("site") == site, pl.col("resource") == resource,
                                    pl.col("timestamp") >= lo, pl.col("timestamp") < hi,
                                    pl.col("pool") == pool if pool else pl.lit(True))
        return dict(rows.group_by("state").agg(pl.col("value").sum()).iter_rows())


def reconstructed_site(root: Path, name: str, seed: int, start: dt.datetime, promtool: str, kind: str = "baremetal"):
    """Generate, extract, reconstruct and backfill one site; return (config, timeline, truth, blocks dir)."""
    url = f"sqlite:///{root / name / 'main.sqlite'}"
    generated = generate_site(url, hosts=EDGE_DEVICES if kind == "edge" else HOSTS, years=DAYS / 365, seed=seed,
                              start=start, quirks=set(), truth_dir=root / name / "truth", site=name, kind=kind)
    site = SiteConfig(name=name, display_name=name, db_url=url, databases=generated.databases, kind=kind,
                      history_start=generated.start, refresh_interval=1.0, query_timeout=10.0)
    snapshot = extract_snapshot(site, root / "snapshots").snapshot_dir
    reconstruction = reconstruct_into(snapshot, ReconstructOptions(site=name, start=generated.start),
                                      root / "timeline" / name)
    result = backfill(root / "timeline" / name, root / "backfill" / name, blocks=True, promtool=promtool,
                      origin=generated.start)
    truth = pl.read_parquet(root / name / "truth" / "truth_spans.parquet")
    return site, reconstruction.timeline, truth, result


def negative_leaf_timeline(start: dt.datetime, hours: int) -> pl.DataFrame:
    """NEGATIVE_SITE's timeline (TIMELINE_SCHEMA): leaves add up to 4 nodes every hour."""
    rows = []
    for hour in range(hours):
        idle = -1.0 if hour in NEGATIVE_HOURS else 1.0
        leaves = {("reservable", "available"): 2.0 - idle, ("reservable", "maintenance"): 0.0,
                  ("reservable", "idle"): idle, ("reservable", "active"): 1.0, ("reservable", "stopped"): 0.0,
                  ("ondemand", "available"): 1.0, ("ondemand", "active"): 0.0, ("ondemand", "stopped"): 0.0}
        for (pool, state), nodes in leaves.items():
            for resource, factor in (("nodes", 1.0), ("vcpus", 32.0), ("memory_bytes", 2.0**37),
                                     ("disk_bytes", 2.0**39), ("gpus", 0.0)):
                rows.append((NEGATIVE_SITE, start + dt.timedelta(hours=hour), "compute_zen", pool, state,
                             resource, nodes * factor))
    return pl.DataFrame(rows, schema=["site", "timestamp", "node_type", "pool", "state", "resource", "value"],
                        orient="row")


def negative_leaf_site(root: Path, start: dt.datetime, hours: int, promtool: str):
    """NEGATIVE_SITE backfilled by the product's writer; returns (timeline, backfill result)."""
    timeline = negative_leaf_timeline(start, hours)
    (root / NEGATIVE_SITE).mkdir()
    timeline.write_parquet(root / NEGATIVE_SITE / "timeline.parquet")
    return timeline, backfill(root / NEGATIVE_SITE, root / "backfill" / NEGATIVE_SITE, blocks=True,
                              promtool=promtool, origin=start)


@contextlib.contextmanager
def build_demo_data(root: Path, *, promtool: str):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    start = (now - dt.timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    data_dir = root / "prometheus-data"
    data_dir.mkdir()
    sites, timelines, truths, last = [], [], [], []
    for name, seed in SITES.items():
        site, timeline, truth, result = reconstructed_site(root, name, seed, start, promtool)
        for block in result.blocks:
            shutil.copytree(result.blocks_dir / block, data_dir / block)
        sites.append(site)
        timelines.append(timeline)
        truths.append(truth)
        last.append(result.last_sample)
    edge, _, edge_truth, result = reconstructed_site(root, EDGE_SITE, EDGE_SEED, start, promtool, kind="edge")
    for block in result.blocks:
        shutil.copytree(result.blocks_dir / block, data_dir / block)
    sites.append(edge)
    last.append(result.last_sample)
    timeline, result = negative_leaf_site(root, start, DAYS * 24, promtool)
    for block in result.blocks:
        shutil.copytree(result.blocks_dir / block, data_dir / block)
    timelines.append(timeline.cast(timelines[0].schema))
    computations = {site.name: (LiveSite(site), site.refresh_interval) for site in sites}
    histories = {site.name: root / "timeline" / site.name for site in sites}
    with LiveExporter(computations, listen=f"127.0.0.1:{support.free_port()}", histories=histories) as exporter:
        target = exporter.url.split("//", 1)[1].split("/", 1)[0]
        with support.PrometheusServer(scrape_config(target), data_dir) as prom:
            live_start = wait_for_scrapes(prom, count=4)
            yield DemoData(prom, epoch(start), epoch(min(last)), live_start, time.time(),
                           pl.concat(timelines), pl.concat(truths), f"http://{target}",
                           root / "timeline" / EDGE_SITE / "device_timeline.parquet")


def wait_for_scrapes(prom: support.PrometheusServer, *, count: int) -> float:
    """Wait until ``count`` scrapes with usage data are stored; return the first one's time."""
    deadline = time.monotonic() + 60
    query = f'count_over_time(openstack_usage_nodes{{job="{DEFAULT_JOB}",instance="{DEFAULT_INSTANCE}"}}[1m])'
    while time.monotonic() < deadline:
        result = prom.api("query", query=f"min({query})")["result"]
        if result and float(result[0]["value"][1]) >= count:
            scraped = prom.api("query", query=f'up{{job="{DEFAULT_JOB}"}}[1m]')["result"][0]["values"]
            return float(scraped[-count][0])
        time.sleep(0.5)
    raise RuntimeError("prometheus did not scrape usage from the live exporter in 60 s")
