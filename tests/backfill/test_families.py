"""Extra series families (exporter.metrics): declared once, validated, written by the backfill beside
the timeline's families, served live from cached state, and one series in a real Prometheus.

Expected lines are written out by hand from the frames below; the timeline part of each window
file must stay byte-identical to a backfill without families.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import time
from pathlib import Path

import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server

from exporter.backfill.blocks import backfill
from exporter.errors import TimelineError
from exporter.layout import family_file
from exporter.live.collector import UsageCollector
from exporter.live.render import USAGE_SCHEMA, rendered
from exporter.live.state import SiteState, Usage
from exporter.familyframe import checked_family_frame, checked_family_frames
from exporter.metrics import EXTRA_FAMILIES, ExtraFamily, check_declarations
from tests.backfill.test_backfill_prometheus import epoch, scrape_config
from tests.backfill.timelines import synthetic_timeline, write_timeline
from tests.support import PrometheusServer, free_port

START = dt.datetime(2024, 1, 1)
NOW = dt.datetime(2030, 1, 1)
THINGS = ExtraFamily("openstack_usage_test_things", ("site", "kind"), "Things per kind (test family)")
TICKS = ExtraFamily("openstack_usage_test_tick_seconds", ("site", "device", "kind"), "Ticks (test counter)",
                    unit="seconds", kind="counter")
DECLARED = (THINGS, TICKS)


def things(hours: int, site: str = "uc") -> pl.DataFrame:
    """kind a: 2h + 1, kind "q\\"x": 10 - h; one row per hour."""
    rows = [(site, kind, START + dt.timedelta(hours=h), value)
            for h in range(hours) for kind, value in (("a", 2.0 * h + 1), ('q"x', 10.0 - h))]
    return pl.DataFrame(rows, schema=THINGS.columns, orient="row")


def test_the_declared_families_are_well_formed_and_bad_ones_fail():
    check_declarations(EXTRA_FAMILIES)
    check_declarations(DECLARED)
    for bad, problem in ((ExtraFamily("openstack_usage_nodes", ("site",), "x"), "name taken"),
                         (ExtraFamily("other_things", ("site",), "x"), "must start with"),
                         (ExtraFamily("openstack_usage_x", ("kind", "site"), "x"), "first label must be site"),
                         (ExtraFamily("openstack_usage_x", ("site", "job"), "x"), "reserved label"),
                         (ExtraFamily("openstack_usage_x", ("site",), "x", unit="bytes"), "suffix"),
                         (ExtraFamily("openstack_usage_x", ("site",), "x", kind="histogram"), "kind")):
        with pytest.raises(TimelineError, match=problem):
            check_declarations((bad,))
    with pytest.raises(TimelineError, match="name taken"):
        check_declarations((THINGS, THINGS))


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop("kind"), "missing column"),
    (lambda f: f.with_columns(extra=pl.lit(1)), "unexpected column"),
    (lambda f: f.with_columns(kind=pl.lit(1)), "wrong type"),
    (lambda f: f.with_columns(value=pl.lit(None, dtype=pl.Float64)), "null"),
    (lambda f: f.with_columns(value=pl.lit(float("nan"))), "NaN"),
    (lambda f: f.with_columns(timestamp=pl.col("timestamp") + pl.duration(milliseconds=5)), "whole seconds"),
    (lambda f: f.with_columns(timestamp=pl.lit(dt.datetime(1969, 1, 1))), "repeating|1970"),
    (lambda f: pl.concat([f, f.head(1)]), "repeating"),
])
def test_a_bad_family_frame_is_one_clear_error(change, message):
    with pytest.raises(TimelineError, match=message):
        checked_family_frame(THINGS, change(things(3)))


@pytest.mark.parametrize("change, message", [
    (lambda f: f.with_columns(value=pl.lit(None, dtype=pl.Float64)), "null"),
    (lambda f: f.with_columns(value=pl.lit(float("nan"))), "NaN"),
    (lambda f: f.with_columns(timestamp=pl.col("timestamp") + pl.duration(milliseconds=5)), "whole seconds"),
    (lambda f: f.with_columns(timestamp=pl.lit(dt.datetime(1969, 1, 1))), "repeating|1970"),
    (lambda f: pl.concat([f, f.head(1)]), "repeating"),
    (lambda f: f.reverse(), None),  # the same rows in another order: sorted, as alone
    (lambda f: f.with_columns(value=-pl.col("value")), None),  # the same labels and times: values only
])
def test_a_frame_checked_after_one_with_the_same_rows_is_checked_as_alone(change, message):
    # the second frame's labels and times are compared with the first's, and checked only if they differ
    first = things(3).sort("site", "kind", "timestamp")  # as it comes back checked
    second = change(first)
    if message is None:
        assert [*checked_family_frames([(THINGS, first), (THINGS, second)])][1].equals(
            checked_family_frame(THINGS, second))
        return
    with pytest.raises(TimelineError, match=message) as alone:
        checked_family_frame(THINGS, second)
    with pytest.raises(TimelineError, match=message) as after:
        [*checked_family_frames([(THINGS, first), (THINGS, second)])]
    assert str(after.value) == str(alone.value)


def backfilled(root: Path, *, families: bool, hours: int = 6, holdback_hours: int = 2):
    timeline = write_timeline(synthetic_timeline(start=START, hours=hours, node_types=("gpu",),
                                                 resources=("nodes",)), root / "timeline")
    if families:
        family_file(timeline, THINGS.name).parent.mkdir()
        things(hours).write_parquet(family_file(timeline, THINGS.name))
    return backfill(timeline, root / "out", now=NOW, holdback=dt.timedelta(hours=holdback_hours),
                    block_hours=2, declared=DECLARED)


def test_backfill_writes_families_after_the_timeline_and_before_the_cutoff(tmp_path):
    plain = backfilled(tmp_path / "plain", families=False)
    with_families = backfilled(tmp_path / "families", families=True)
    assert [f.path for f in plain.files] == [f.path for f in with_families.files]
    assert with_families.families == {THINGS.name: {"series": 2, "samples": 8}}  # hours 0..3: cut-off 04:00
    fixed = 'instance="openstack-usage-exporter",job="openstack-usage"'
    t0 = epoch(START)
    for number, (old, new) in enumerate(zip(plain.files, with_families.files)):
        before = (plain.out_dir / old.path).read_bytes()
        after = (with_families.out_dir / new.path).read_text()
        expected = [f"# HELP {THINGS.name} {THINGS.help}", f"# TYPE {THINGS.name} gauge"]
        for kind, values in (("a", lambda h: 2 * h + 1), ('q\\"x', lambda h: 10 - h)):
            expected += [f'{THINGS.name}{{{fixed},kind="{kind}",site="uc"}} {float(values(h))} {t0 + 3600 * h}'
                         for h in (2 * number, 2 * number + 1)]
        assert after == before[:-len(b"# EOF\n")].decode() + "\n".join(expected) + "\n# EOF\n"


def test_several_families_share_the_window_files_in_declared_order(tmp_path):
    timeline = write_timeline(synthetic_timeline(start=START, hours=2, node_types=("gpu",), resources=("nodes",)),
                              tmp_path / "timeline")
    family_file(timeline, THINGS.name).parent.mkdir()
    ticks = pl.DataFrame({"site": ["uc", "uc"], "device": ["d1", "d1"], "kind": ["a", "a"],
                          "timestamp": [START, START + dt.timedelta(hours=1)], "value": [5.0, 7.5]})
    ticks.write_parquet(family_file(timeline, TICKS.name))
    things(2).write_parquet(family_file(timeline, THINGS.name))
    result = backfill(timeline, tmp_path / "out", now=NOW, holdback=dt.timedelta(0), block_hours=2, declared=DECLARED)
    text = (result.out_dir / result.files[0].path).read_text()
    fixed = 'instance="openstack-usage-exporter",job="openstack-usage"'
    t0 = epoch(START)
    assert text.index(f"# TYPE {THINGS.name} gauge") < text.index(f"# TYPE {TICKS.name} counter")
    assert text.endswith(f"# HELP {TICKS.name} {TICKS.help}\n# TYPE {TICKS.name} counter\n# UNIT {TICKS.name} seconds\n"
                         f'{TICKS.name}_total{{device="d1",{fixed},kind="a",site="uc"}} 5.0 {t0}\n'
                         f'{TICKS.name}_total{{device="d1",{fixed},kind="a",site="uc"}} 7.5 {t0 + 3600}\n# EOF\n')
    assert result.families == {THINGS.name: {"series": 2, "samples": 4}, TICKS.name: {"series": 1, "samples": 2}}


def test_a_family_file_nobody_declared_is_refused(tmp_path):
    timeline = write_timeline(synthetic_timeline(start=START, hours=6, node_types=("gpu",), resources=("nodes",)),
                              tmp_path / "timeline")
    family_file(timeline, "openstack_usage_mystery").parent.mkdir()
    things(3).write_parquet(family_file(timeline, "openstack_usage_mystery"))
    with pytest.raises(TimelineError, match="undeclared series famil"):
        backfill(timeline, tmp_path / "out", now=NOW, declared=DECLARED)


def live_state(at: dt.datetime) -> SiteState:
    empty = pl.DataFrame(schema=USAGE_SCHEMA)
    frame = things(1).with_columns(timestamp=pl.lit(at), value=pl.when(pl.col("kind") == "a").then(42.0)
                                   .otherwise(-1.0))
    ticks = pl.DataFrame({"site": ["uc"], "device": ["d1"], "kind": ["a"], "timestamp": [at], "value": [5.0]})
    usage = Usage(at=at, gauges=empty, counters=empty, families={THINGS.name: frame, TICKS.name: ticks})
    return SiteState(site="uc", usage=rendered(usage, None, DECLARED), up=True)


def test_the_live_collector_renders_the_cached_family_rows():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(lambda: [live_state(NOW), SiteState(site="down")], declared=DECLARED))
    assert registry.get_sample_value(THINGS.name, {"site": "uc", "kind": "a"}) == 42.0
    assert registry.get_sample_value(THINGS.name, {"site": "uc", "kind": 'q"x'}) == -1.0
    assert registry.get_sample_value(f"{TICKS.name}_total", {"site": "uc", "device": "d1", "kind": "a"}) == 5.0
    with pytest.raises(TimelineError, match="not declared"):
        rendered(Usage(at=NOW, gauges=pl.DataFrame(schema=USAGE_SCHEMA), counters=pl.DataFrame(schema=USAGE_SCHEMA),
                       families={"openstack_usage_mystery": things(1)}), None, DECLARED)


@pytest.mark.prometheus
def test_backfilled_and_live_family_samples_are_one_series_in_prometheus(tmp_path, promtool):
    result = backfilled(tmp_path, families=True, hours=24, holdback_hours=3)
    state = live_state(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(lambda: [state], declared=DECLARED))
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    data = tmp_path / "data"
    shutil.rmtree(tmp_path / "out" / "blocks", ignore_errors=True)
    blocked = backfill(tmp_path / "timeline", tmp_path / "out", now=NOW, holdback=dt.timedelta(hours=3),
                       block_hours=162, blocks=True, promtool=promtool, declared=DECLARED)
    data.mkdir()
    for ulid in blocked.blocks:
        shutil.copytree(blocked.blocks_dir / ulid, data / ulid)
    match = f'{THINGS.name}{{kind="a"}}'
    try:
        with PrometheusServer(scrape_config(f"127.0.0.1:{port}"), data) as server:
            deadline = time.monotonic() + 30
            live = []
            while not live and time.monotonic() < deadline:
                live = server.api("query", query=match)["result"]
                time.sleep(0.2)
            assert live and live[0]["value"][1] == "42"
            past = server.api("query_range", query=match, start=epoch(START), end=epoch(START) + 20 * 3600,
                              step=3600)["result"]
            assert [float(v) for _, v in past[0]["values"]] == [2.0 * h + 1 for h in range(21)]
            everything = server.api("series", **{"match[]": match}, start=epoch(START), end=time.time() + 60)
            assert len(everything) == 1 and everything[0]["instance"] == "openstack-usage-exporter"
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
    assert result.families == {THINGS.name: {"series": 2, "samples": 42}}


def test_a_timeline_of_families_only_takes_the_step_of_its_finest_grid(tmp_path):
    """An edge site without Nova: hourly device-like samples from 09:00 and a daily family at
    midnight before them; the step is the hour, and the cut-off the hourly grid's end - holdback."""
    timeline = write_timeline(synthetic_timeline(start=START, hours=1, node_types=("gpu",), resources=("nodes",))
                              .clear(), tmp_path / "timeline")
    family_file(timeline, THINGS.name).parent.mkdir()
    hourly = things(30).with_columns(pl.col("timestamp") + dt.timedelta(hours=9))
    hourly.write_parquet(family_file(timeline, THINGS.name))
    pl.DataFrame({"site": "uc", "device": "d1", "kind": "a", "timestamp": [START, START + dt.timedelta(days=1)],
                  "value": [1.0, 2.0]}).write_parquet(family_file(timeline, TICKS.name))
    result = backfill(timeline, tmp_path / "out", now=NOW, holdback=dt.timedelta(hours=2), declared=DECLARED)
    assert result.step_seconds == 3600
    assert result.cutoff == START + dt.timedelta(hours=9 + 30 - 2)  # last hourly sample 09:00 + 29h, + 1h step
    assert (result.first_sample, result.last_sample) == (START, START + dt.timedelta(hours=9 + 27))


def test_families_only_counters_must_start_at_the_origin(tmp_path):
    """The live exporter integrates from history_start: counters backfilled from another time
    would meet it with a jump, so a families-only timeline is checked like a timeline."""
    timeline = write_timeline(synthetic_timeline(start=START, hours=1, node_types=("gpu",), resources=("nodes",))
                              .clear(), tmp_path / "timeline")
    family_file(timeline, THINGS.name).parent.mkdir()
    things(12).with_columns(pl.col("timestamp") - dt.timedelta(hours=3)).write_parquet(
        family_file(timeline, THINGS.name))  # a gauge family may start earlier (a daily one at midnight)
    pl.DataFrame({"site": "uc", "device": "d1", "kind": "a", "timestamp": [START + dt.timedelta(hours=h) for h in range(9)],
                  "value": [float(h) for h in range(9)]}).write_parquet(family_file(timeline, TICKS.name))
    result = backfill(timeline, tmp_path / "out", now=NOW, declared=DECLARED, origin=START)
    assert result.origins == {"uc": START}
    with pytest.raises(TimelineError, match="counters must integrate from 2024-01-01 01:00"):
        backfill(timeline, tmp_path / "late", now=NOW, declared=DECLARED, origin=START + dt.timedelta(hours=1))


@pytest.mark.parametrize("seed", range(4))
def test_a_family_frame_comes_back_sorted_whatever_order_it_came_in(seed):
    # in order already (not sorted again), shuffled, reversed, or out of order by one swap of neighbours
    rng = random.Random(seed)
    kinds = ["a", "ab", "B", 'q"x', "é", ""]
    rows = [(site, kind, START + dt.timedelta(hours=h), rng.random())
            for site in ("uc", "tacc") for kind in rng.sample(kinds, 4) for h in rng.sample(range(48), 5)]
    want = pl.DataFrame(rows, schema=THINGS.columns, orient="row").sort("site", "kind", "timestamp")
    at = rng.randrange(len(rows) - 1)
    swapped = [*range(at), at + 1, at, *range(at + 2, len(rows))]
    for order in (list(range(len(rows))), rng.sample(range(len(rows)), len(rows)), list(range(len(rows)))[::-1],
                  swapped):
        assert checked_family_frame(THINGS, want[order]).equals(want)


def test_a_series_split_in_two_runs_is_sorted_and_its_repeat_found():
    # each run's timestamps go forward, but series "a" comes back after "b": only the labels of
    # the runs' first rows show it; and the repeat (a, 00:00) is two runs apart before the sort
    rows = [("uc", kind, START + dt.timedelta(hours=h), 1.0) for kind, h in (("a", 0), ("b", 0), ("a", 1))]
    frame = pl.DataFrame(rows, schema=THINGS.columns, orient="row")
    assert checked_family_frame(THINGS, frame).equals(frame.sort("site", "kind", "timestamp"))
    with pytest.raises(TimelineError, match="^series family openstack_usage_test_things: 2 rows repeating a series and timestamp$"):
        checked_family_frame(THINGS, pl.concat([frame, frame.head(1)]))
