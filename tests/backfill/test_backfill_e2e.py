"""End to end: generated site -> `run` (extract, reconstruct, backfill + promtool) -> real Prometheus.

Expectations come from the reconstruction's timeline.parquet (the backfill's input), never from
the backfill's own files: every series over the whole history, and daily node-hours.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from exporter.backfill.blocks import backfill
from exporter.config import load_config
from exporter.backfill.install import install_blocks
from exporter.metrics import FAMILIES
from exporter.run import run_site
from exporter.columns import TIMELINE_KEYS
from exporter.reconstruct.timeline import counters_until
from exporter.sitegen import generate_site
from tests.support import PrometheusServer

pytestmark = pytest.mark.prometheus

# a year before today: the snapshot is taken now, so the timeline runs from START to now
START = dt.datetime.combine(dt.date.today() - dt.timedelta(days=365), dt.time())
LABELS = ("site", "node_type", "pool", "state")


def epoch(moment: dt.datetime) -> int:
    return int((moment - dt.datetime(1970, 1, 1)).total_seconds())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, promtool, prometheus_bin):
    root = tmp_path_factory.mktemp("e2e")
    generate_site(f"sqlite:///{root}/db/main.sqlite", hosts=6, years=1, seed=11, start=START,
                  truth_dir=root / "truth")
    config_path = root / "sites.yaml"
    config_path.write_text(f"data_dir: {root}/data\nsites:\n  gen:\n    db_url: sqlite:///{root}/db/main.sqlite\n"
                           f"    history_start: {START:%Y-%m-%d}\n")
    result = run_site(load_config(config_path), "gen", out_dir=root / "out", promtool=promtool)
    data = root / "promdata"
    data.mkdir()
    installed = install_blocks(result.backfill.out_dir, data)  # what the printed next steps tell operators
    assert sorted(b.ulid for b in installed.installed) == sorted(result.backfill.blocks)
    # Prometheus labels are text: compare against the timeline's labels as text.
    timeline = pl.read_parquet(result.timeline_dir / "timeline.parquet").with_columns(
        pl.col(TIMELINE_KEYS).cast(pl.String))
    with PrometheusServer("global: {scrape_interval: 1m}\n", data) as server:
        yield result.backfill, timeline, server


def query_frame(server: PrometheusServer, query: str, start: int, end: int, step: int) -> pl.DataFrame:
    data = server.api("query_range", query=query, start=start, end=end, step=step)["result"]
    rows = [(*(s["metric"].get(k) for k in LABELS), int(t), float(v)) for s in data for t, v in s["values"]]
    return pl.DataFrame(rows, schema=[*LABELS, "t", "got"], orient="row")


def test_every_series_in_prometheus_equals_the_timeline(pipeline):
    result, timeline, server = pipeline
    assert result.first_sample == START and result.blocks
    history = timeline.filter(pl.col("timestamp") <= result.last_sample)
    for family in FAMILIES:
        expected = history.filter(pl.col("resource") == family.resource).select(
            *LABELS, t=pl.col("timestamp").dt.epoch("s"), want=pl.col("value"))
        got = query_frame(server, family.gauge, epoch(START), epoch(result.last_sample), 3600)
        assert got.height == expected.height, family.gauge
        joined = expected.join(got, on=[*LABELS, "t"], how="left")
        assert joined["got"].null_count() == 0
        assert joined.select(((pl.col("got") - pl.col("want")).abs()
                              <= 1e-9 * pl.col("want").abs() + 1e-9).all()).item(), family.gauge


def test_counter_increase_over_whole_days_is_the_timelines_node_hours(pipeline):
    result, timeline, server = pipeline
    last_midnight = dt.datetime.combine(result.last_sample.date(), dt.time())
    got = query_frame(server, "increase(openstack_usage_node_seconds_total[1d]) / 3600",
                      epoch(START + dt.timedelta(days=1)), epoch(last_midnight), 86400)
    want = (timeline.filter(pl.col("resource") == "nodes", pl.col("timestamp") < last_midnight)
            .group_by(*LABELS, day=pl.col("timestamp").dt.truncate("1d"))
            .agg(want=pl.col("value").sum(),  # hourly means x 1h = node-hours
                 anomaly=(pl.col("value") < 0).any())
            .with_columns(t=(pl.col("day") + dt.timedelta(days=1)).dt.epoch("s")))
    joined = want.join(got, on=[*LABELS, "t"], how="left")
    assert joined.height == got.height > 300
    assert joined["got"].null_count() == 0
    # a negative leaf (data anomaly kept by reconstruct) makes the counter drop, which PromQL reads
    # as a reset (docs/metrics.md); those series-days cannot match and are left out
    joined = joined.filter(~pl.col("anomaly"))
    assert joined.select(((pl.col("got") - pl.col("want")).abs() <= 1e-6 * pl.col("want").abs() + 1e-6).all()).item()
    assert joined["want"].sum() > 0


def test_rerunning_backfill_on_the_same_timeline_gives_the_same_samples(pipeline, tmp_path):
    """The pipeline's files were removed (blocks made): the re-run's kept files have the same
    windows with the same samples (samples_sha256; docs/backfill.md "Verifying a re-run")."""
    result, _, _ = pipeline
    again = backfill(result.timeline_path, tmp_path, job=result.job, instance=result.instance,
                     origin=START)
    assert again.cutoff == result.cutoff
    assert [(f.path, f.bytes, f.samples_sha256) for f in again.files] == \
        [(f.path, f.bytes, f.samples_sha256) for f in result.files]


def test_live_counters_continue_the_backfilled_ones_without_a_jump(pipeline):
    """counters_until (what the live exporter exposes) at the last backfilled sample time equals
    the backfilled counter there, for every series: no reset, no jump at the hand-over."""
    result, _, server = pipeline
    spans = pl.read_parquet(result.timeline_path / "spans.parquet")
    live = counters_until(spans, origin=START, at=result.last_sample).with_columns(
        pl.col(TIMELINE_KEYS).cast(pl.String))
    names = {family.resource: family.counter_sample for family in FAMILIES}
    data = server.api("query", query='{__name__=~"openstack_usage_.+_total"}', time=epoch(result.last_sample))
    got = pl.DataFrame([(*(s["metric"][k] for k in LABELS), s["metric"]["__name__"], float(s["value"][1]))
                        for s in data["result"]], schema=[*LABELS, "name", "got"], orient="row")
    joined = live.with_columns(name=pl.col("resource").replace_strict(names)).join(
        got, on=[*LABELS, "name"], how="full", coalesce=True)
    assert joined.height == got.height == live.height
    assert joined.select(((pl.col("got") - pl.col("value")).abs() <= 1e-9 * pl.col("value").abs() + 1e-6).all()).item()
