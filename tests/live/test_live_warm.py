"""Warm start (exporter.live.warm): a restarted LiveSite serves the saved values at once — every
series it served before the stop, the booked-ahead and devices families and the disabled hosts
too — then continues incrementally from the saved table cache, and its values equal a cold
computation from scratch at the same moment (the independent reference), also after rows changed
while it was down."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request

import polars as pl
import pytest
import sqlalchemy as sa

from exporter.live import LiveExporter
from exporter.live.refresh import utc_now
from exporter.live.render import rendered
from exporter.live.source import LiveSite
from exporter.live.state import USAGE_KEYS
from exporter.live.warm import STATE, STATE_DIR
from exporter.metrics import BOOKED_AHEAD, DEVICE_SECONDS, DEVICES
from tests.live.support import scrape, served_series, site_config, site_ending_now

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def generated(mariadb_url, tmp_path_factory):
    with site_ending_now(mariadb_url, tmp_path_factory.mktemp("warm") / "truth", hosts=5, days=20, seed=9) as site:
        yield site


def _values(frame: pl.DataFrame) -> dict:
    return {row[:-1]: row[-1] for row in frame.select(*USAGE_KEYS, "value").iter_rows()}


def _close(a: pl.DataFrame, b: pl.DataFrame) -> None:
    left, right = _values(a), _values(b)
    assert left.keys() == right.keys()
    for key, value in left.items():
        assert value == pytest.approx(right[key], rel=1e-9, abs=1e-6), key


def _served_then_stop(exporter: LiveExporter) -> tuple[dict, bytes]:
    """Every series a scrape gets (not the self-metrics) and the /explain answer of the present; only
    the server runs: the test refreshes by hand."""
    exporter.server.start()
    try:
        return served_series(scrape(exporter.url + "/metrics")), _explained(exporter)
    finally:
        exporter.stop()


def _explained(exporter: LiveExporter) -> bytes:
    with urllib.request.urlopen(exporter.url + "/explain?site=synthetic&resource=vcpus", timeout=30) as response:
        return response.read()


def test_restart_serves_saved_values_then_continues_incrementally(generated, mariadb_url, tmp_path):
    site = site_config(generated, mariadb_url)
    state_dir = tmp_path / "synthetic" / STATE_DIR
    first = LiveSite(site, state_dir=state_dir)
    assert first.warm_published() is None  # nothing saved yet: cold
    exporter = LiveExporter({site.name: (first, 3600.0)}, listen="127.0.0.1:0")  # not started: no thread
    refresher = exporter.refreshers[site.name]
    assert refresher.refresh_once() and first.tables.last_mode == "full"
    served = refresher.state.usage
    scraped, explained = _served_then_stop(exporter)
    assert {name for name, _ in scraped} >= {family.name for family in BOOKED_AHEAD}
    assert json.loads((state_dir / STATE).read_text())["published_at"] == served.at.isoformat()

    # The server stamps whole seconds: wait for the next one, so the change is dated after what was
    # served (a change dated before it would rewrite served history, which held counters never undo).
    time.sleep(max(0.0, (served.at.replace(microsecond=0) + dt.timedelta(seconds=1.05) - utc_now()).total_seconds()))
    admin = sa.create_engine(mariadb_url)  # while the exporter is down: an instance goes away
    nova = generated.databases["nova"]
    with admin.begin() as conn:
        conn.exec_driver_sql(f"UPDATE `{nova}`.instances SET deleted = id, deleted_at = UTC_TIMESTAMP(), "
                             "updated_at = UTC_TIMESTAMP(), vm_state = 'deleted' "
                             "WHERE deleted = 0 AND vm_state = 'active' ORDER BY id DESC LIMIT 1")
    admin.dispose()

    second = LiveSite(site, state_dir=state_dir)
    restarted = LiveExporter({site.name: (second, 3600.0)}, listen="127.0.0.1:0")
    refresher = restarted.refreshers[site.name]
    warm = refresher.state  # before any refresh: the saved values, counters as they were served
    assert warm.up and warm.usage.at == served.at
    assert warm.usage.counters == served.counters and warm.usage.gauges == served.gauges
    assert warm.usage.families == served.families and warm.usage.disabled == served.disabled
    restarted.server.start()
    assert served_series(scrape(restarted.url + "/metrics")) == scraped  # every series, the same values
    assert _explained(restarted) == explained  # and the present explained from the same spans
    assert refresher.refresh_once()
    assert second.tables.last_mode == "incremental"  # continued from the saved cache
    now = refresher.state.usage.at
    after = refresher.state.usage
    restarted.stop()
    cold = LiveSite(site)  # the reference: everything recomputed from scratch at the same moment
    reference = cold(now)
    cold.close()
    _close(after.gauge_frame, reference.gauges)
    # counters: the same integral, and never below what was served before the restart
    _close(after.counter_frame, reference.counters)
    before = _values(served.counter_frame)
    assert all(value >= before.get(key, 0.0) for key, value in _values(after.counter_frame).items())


@pytest.fixture(scope="module")
def edge_generated(mariadb_url, tmp_path_factory):
    with site_ending_now(mariadb_url, tmp_path_factory.mktemp("warm-edge") / "truth", hosts=6, days=20, seed=4,
                         kind="edge") as site:
        yield site


def _family(rows) -> dict:
    return {labels: value for labels, value in rows}


def test_restarted_edge_site_serves_its_devices_at_once_and_continues_their_counter(edge_generated, mariadb_url,
                                                                                   tmp_path):
    site = site_config(edge_generated, mariadb_url, kind="edge")
    state_dir = tmp_path / STATE_DIR
    first = LiveSite(site, state_dir=state_dir)
    exporter = LiveExporter({site.name: (first, 3600.0)}, listen="127.0.0.1:0")
    assert exporter.refreshers[site.name].refresh_once()
    served = exporter.refreshers[site.name].state.usage
    scraped, _ = _served_then_stop(exporter)
    assert {DEVICES.name, DEVICE_SECONDS.sample_name} <= {name for name, _ in scraped}

    second = LiveSite(site, state_dir=state_dir)
    restarted = LiveExporter({site.name: (second, 3600.0)}, listen="127.0.0.1:0")
    restarted.server.start()
    assert served_series(scrape(restarted.url + "/metrics")) == scraped  # the devices too, at once
    refresher = restarted.refreshers[site.name]
    assert refresher.refresh_once() and second.tables.last_mode == "incremental"
    after = refresher.state.usage
    restarted.stop()
    cold = LiveSite(site)  # the reference: the device-seconds integrated from scratch at the same moment
    reference = rendered(cold(after.at), None)
    cold.close()
    counter, expected = _family(after.families[DEVICE_SECONDS.name]), _family(reference.families[DEVICE_SECONDS.name])
    assert counter.keys() == expected.keys() and max(expected.values()) > 3600  # device-seconds: hours of devices
    for labels, value in counter.items():
        assert value == pytest.approx(expected[labels], rel=1e-9, abs=1e-6), labels
        assert value >= _family(served.families[DEVICE_SECONDS.name]).get(labels, 0.0)


def test_saved_state_of_other_settings_is_ignored(generated, mariadb_url, tmp_path):
    site = site_config(generated, mariadb_url)
    state_dir = tmp_path / STATE_DIR
    live = LiveSite(site, state_dir=state_dir)
    usage = live(utc_now())
    live.persist(rendered(usage, None))
    live.close()
    assert LiveSite(site, state_dir=state_dir).warm_published() is not None
    other = site_config(generated, mariadb_url, history_start=generated.start + dt.timedelta(days=1))
    assert LiveSite(other, state_dir=state_dir).warm_published() is None  # another history_start: cold
    (state_dir / STATE).write_text("{not json")
    assert LiveSite(site, state_dir=state_dir).warm_published() is None  # unreadable: cold, no traceback
