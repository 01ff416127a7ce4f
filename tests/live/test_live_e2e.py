"""History and present as ONE series: backfilled blocks + the live exporter in a real Prometheus.

A generated site (no quirks) ends now in MariaDB. Its history is extracted, reconstructed on a
5-minute grid from history_start and backfilled up to the cut-off; Prometheus loads the blocks
and scrapes the running exporter with the shipped etc/prometheus.yml pinning. Then one range query
across the cut-off must give one series per label set, with no gap, no step beyond real changes,
and counters whose increase across the boundary is the true node-seconds (from the generator's
truth spans, not from the pipeline).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from exporter.backfill.blocks import backfill
from exporter.extract.copy import extract_snapshot
from exporter.live import LiveExporter
from exporter.live.refresh import unix_seconds
from exporter.live.source import LiveSite
from exporter.reconstruct.bookings import HORIZONS
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_into
from tests.live.support import site_config, site_ending_now, wait_for
from tests.support import PrometheusServer

pytestmark = [pytest.mark.mariadb, pytest.mark.prometheus]

REPO = Path(__file__).resolve().parents[2]
STEP = dt.timedelta(minutes=5)


def scrape_config(target: str) -> str:
    """The shipped etc/prometheus.yml (job + pinned instance), pointed at ``target``, every second."""
    config = yaml.safe_load((REPO / "etc" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s")
    config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
    return yaml.safe_dump(config)


@contextlib.contextmanager
def busy_site_ending_now(mariadb_url, root):
    """A 4-day, 8-host site ending now with instances and something booked ahead at its end.

    The simulation starts on the current hour, so its draw changes every hour, and some hours'
    sites of seed 5 had no lease at all (the tests then failed by the clock): the first seed from 5
    whose site is busy enough is used, which is the same seed for the same hour."""
    from tests.reconstruct.test_leadtime import brute_force_booked

    for seed in range(5, 25):
        with site_ending_now(mariadb_url, root / f"truth-{seed}", hosts=8, days=4, seed=seed) as generated:
            truth = pl.read_parquet(generated.truth_dir / "truth_bookings.parquet").filter(~pl.col("maintenance"))
            ahead = brute_force_booked(truth.to_dicts(), generated.end + dt.timedelta(hours=1), HORIZONS["30d"])
            if generated.row_counts["nova.instances"] >= 2 and any(v[0] > 0 for v in ahead.values()):
                yield generated
                return
    raise AssertionError("no seed in 5..24 gave a site with instances and a booking ahead at its end")


@pytest.fixture(scope="module")
def world(mariadb_url, promtool, prometheus_bin, tmp_path_factory):
    """(generated site, site config, backfill result): history backfilled up to the cut-off."""
    root = tmp_path_factory.mktemp("live-e2e")
    with busy_site_ending_now(mariadb_url, root) as generated:
        site = site_config(generated, mariadb_url)
        snapshot = extract_snapshot(site, root / "snapshots").snapshot_dir
        rec = reconstruct_into(snapshot, ReconstructOptions(site=site.name, start=site.history_start, step=STEP,
                                                            maintenance_projects=site.maintenance_projects),
                               root / "reconstruction")
        result = backfill(root / "reconstruction", root / "backfill", blocks=True, promtool=promtool,
                          holdback=dt.timedelta(0), origin=site.history_start)
        yield generated, site, result


@contextlib.contextmanager
def history_and_live(site, result, tmp_path: Path):
    """The backfilled blocks in a Prometheus that scrapes a running exporter of ``site``."""
    data = tmp_path / "data"
    data.mkdir()
    for ulid in result.blocks:
        shutil.copytree(result.blocks_dir / ulid, data / ulid)
    with LiveExporter({site.name: (LiveSite(site), 1.0)}, listen="127.0.0.1:0") as exporter:
        target = exporter.url.removeprefix("http://")
        with PrometheusServer(scrape_config(target), data) as prom:
            wait_for(lambda: len(prom.api("query", query="openstack_usage_up == 1")["result"]) == 1,
                     timeout=60, what="Prometheus scraping the exporter")
            yield exporter, prom


def epoch(moment: dt.datetime) -> float:
    return unix_seconds(moment)


def series_key(metric: dict) -> tuple:
    return tuple(sorted(metric.items()))


def truth_node_seconds(truth_dir: Path, start: dt.datetime, end: dt.datetime) -> float:
    """∫ total nodes dt over [start, end) from the generator's truth spans (by hand)."""
    spans = pl.read_parquet(truth_dir / "truth_spans.parquet").filter(pl.col("level") == "total")
    clipped = spans.with_columns(
        pl.max_horizontal("start", pl.lit(start)).alias("s"),
        pl.min_horizontal(pl.col("end").fill_null(pl.lit(end)), pl.lit(end)).alias("e"))
    seconds = ((pl.col("e") - pl.col("s")).dt.total_microseconds() / 1e6).clip(lower_bound=0) * pl.col("nodes")
    return float(clipped.select(seconds.sum()).item())


def test_one_range_query_across_the_cutoff_is_one_continuous_series(world, tmp_path):
    generated, site, result = world
    with history_and_live(site, result, tmp_path) as (_, prom):
        time.sleep(4)  # a few live samples
        end = time.time()
        start = epoch(result.cutoff) - 3600
        gauges = prom.api("query_range", query="last_over_time(openstack_usage_nodes[15m])",
                          start=start, end=end, step=60)["result"]
        counters = prom.api("query_range", query="openstack_usage_node_seconds_total", start=start, end=end,
                            step=1)["result"]
        raw = prom.api("query", query="openstack_usage_node_seconds_total[4h]", time=end)["result"]
        last_refresh = prom.api("query", query="openstack_usage_last_refresh_timestamp_seconds[4h]",
                                time=end)["result"]
        increase = increases_across_cutoff(prom, raw, last_refresh, result.cutoff)

    # one series per label set, job/instance pinned, covering both sides of the cut-off, no gap
    keys = [series_key(s["metric"]) for s in gauges]
    assert len(keys) == len(set(keys)) > 0
    assert all(dict(k)["job"] == "openstack-usage" and dict(k)["instance"] == "openstack-usage-exporter"
               for k in keys)
    steps = int((end - start) // 60) + 1
    for series in gauges:
        assert len(series["values"]) == steps, f"gap in {series['metric']}"

    # no step at the boundary beyond real changes: the site's total nodes (Σ over node_type,
    # pool, state) just before and just after the cut-off equals the truth at those moments.
    # (Site-wide: reconstruct reports hosts not yet enrolled in Blazar as node_type="unknown",
    # which the truth attributes to their eventual type.)
    (t_before, value_before), (t_after, value_after) = boundary_totals(gauges, epoch(result.cutoff))
    truth = pl.read_parquet(generated.truth_dir / "truth_spans.parquet").filter(pl.col("level") == "total")
    assert value_before == total_at(truth, t_before)
    assert value_after == total_at(truth, t_after)

    # counters: one series each, and increase() across the cut-off = true node-seconds
    assert len({series_key(s["metric"]) for s in counters}) == len(counters)
    t1, t2, measured, total = increase
    assert t1 < result.cutoff < t2
    # tolerance: float noise, plus the documented ~1e-12 × total guard on served counters
    assert measured == pytest.approx(truth_node_seconds(generated.truth_dir, t1, t2), rel=1e-9, abs=1e-10 * total)


def total_at(truth: pl.DataFrame, moment: dt.datetime) -> float:
    live = truth.filter((pl.col("start") <= moment) & (pl.col("end").is_null() | (pl.col("end") > moment)))
    return float(live["nodes"].sum())


def boundary_totals(gauges: list[dict], cutoff: float) -> tuple[tuple[dt.datetime, float], ...]:
    """(moment, Σ nodes) at the last query step before the cut-off and the last step (live).

    The last step before the cut-off shows the last backfilled sample; the last step shows the
    exporter's current value.
    """
    last_history = max(t for s in gauges for t, _ in s["values"] if t < cutoff)
    live = max(t for s in gauges for t, _ in s["values"])
    return tuple((dt.datetime.utcfromtimestamp(t), sum(float(dict(s["values"])[t]) for s in gauges))
                 for t in (last_history, live))


def increases_across_cutoff(prom: PrometheusServer, raw: list, last_refresh: list,
                            cutoff: dt.datetime) -> tuple[dt.datetime, dt.datetime, float, float]:
    """(t1, t2, Σ increase, Σ counters at t2) from the last backfilled sample t1 to the newest live one.

    The window [t1, T] is chosen so both edges are samples (no extrapolation); t2 is the moment
    the exporter's value at T describes (its last_refresh timestamp scraped at T).
    """
    newest = max(float(t) for s in raw for t, _ in s["values"])
    t1 = max(float(t) for s in raw for t, _ in s["values"] if float(t) < epoch(cutoff))
    refresh_at = {float(t): float(v) for t, v in last_refresh[0]["values"]}[newest]
    window_ms = int(round((newest - t1) * 1000))
    resets = prom.api("query", query=f"sum(resets(openstack_usage_node_seconds_total[{window_ms}ms]))",
                      time=newest)["result"]
    assert float(resets[0]["value"][1]) == 0, "a live counter went below its backfilled value (a reset)"
    data = prom.api("query", query=f"sum(increase(openstack_usage_node_seconds_total[{window_ms}ms]))",
                    time=newest)["result"]
    total = sum(float(v) for s in raw for t, v in s["values"] if float(t) == newest)
    return (dt.datetime.utcfromtimestamp(t1), dt.datetime.utcfromtimestamp(refresh_at), float(data[0]["value"][1]),
            total)


def test_live_booked_ahead_gauges_continue_the_backfilled_ones(world, tmp_path):
    """The booked-ahead lens (an extra family): backfilled on the 5-minute grid up to the cut-off,
    then scraped live; one series per (node_type, horizon), no gap across the cut-off, and the
    live value is the truth's "committed for [now, now + H) as known now"."""
    from tests.reconstruct.test_leadtime import brute_force_booked

    generated, site, result = world
    assert result.families["openstack_usage_booked_ahead_nodes"]["series"] > 0
    with history_and_live(site, result, tmp_path) as (exporter, prom):
        time.sleep(3)
        end = time.time()
        start = epoch(result.cutoff) - 3600
        booked = prom.api("query_range", query="last_over_time(openstack_usage_booked_ahead_nodes[15m])",
                          start=start, end=end, step=60)["result"]
        names = prom.api("series", **{"match[]": "openstack_usage_booked_ahead_nodes"}, start=start - 86400,
                         end=end + 60)
        state = exporter.refreshers[site.name].state
    keys = [series_key(s["metric"]) for s in booked]
    assert len(keys) == len(set(keys)) == len(names) == result.families["openstack_usage_booked_ahead_nodes"]["series"]
    assert all(dict(k)["instance"] == "openstack-usage-exporter" for k in keys)
    steps = int((end - start) // 60) + 1
    for series in booked:
        assert len(series["values"]) == steps, f"gap in {series['metric']}"
    # what the exporter serves now is the truth as known at its refresh time
    truth = pl.read_parquet(generated.truth_dir / "truth_bookings.parquet").filter(~pl.col("maintenance")).to_dicts()
    served = dict(state.usage.families["openstack_usage_booked_ahead_nodes"])
    for (site_name, node_type, horizon), value in served.items():
        want = brute_force_booked(truth, state.usage.at, HORIZONS[horizon])
        assert value == pytest.approx(want.get(node_type, [0.0])[0], rel=1e-9, abs=1e-9)
    assert any(value > 0 for value in served.values())
