"""The saved set of the live state (exporter.live.warm, warmset) without a database: what a
restart serves is exactly what was served (floats, extra families, disabled hosts), and a set
written by the previous format is replaced by the first save (not refused as foreign)."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from exporter.live import warm, warmset
from exporter.live.render import USAGE_SCHEMA
from exporter.live.state import RenderedUsage, Usage

AT = dt.datetime(2026, 11, 30, 9, 0, 0, 123456)
KEY = "k" * 64
PUBLISHED = RenderedUsage(
    at=AT,
    gauges={"nodes": ((("compute_skylake", "reservable", "available"), 0.1 + 0.2),),
            "vcpus": ((("compute_skylake", "ondemand", "occupied"), 48.0),)},
    counters={"nodes": ((("compute_skylake", "reservable", "available"), 123456789.00000001),)},
    counter_frame=None, counters_held=2,
    families={"openstack_usage_booked_ahead_nodes": ((("s", "compute_skylake", "1d"), 1 / 3),
                                                      (("s", "compute_skylake", "7d"), 2.5)),
              "openstack_usage_device_seconds": ((("s", "raspberrypi4", "reservable", "active"), 7.25e6),)},
    disabled=(("compute_skylake", 1.0),))


def _save(directory) -> None:
    empty = pl.DataFrame(schema=USAGE_SCHEMA)
    cutoff = Usage(at=AT - dt.timedelta(hours=1), gauges=empty, counters=empty)
    cache = warmset.CacheState(frames={}, reads={}, watermark=AT, last_full=AT)
    warmset.save(directory, KEY, PUBLISHED, cutoff, cache, {})


def test_a_saved_set_serves_exactly_what_was_served(tmp_path):
    _save(tmp_path / "live-state")
    restored = warm.published(tmp_path / "live-state", KEY)
    assert restored == PUBLISHED  # every value bit for bit, the families and disabled hosts too
    assert warm.published(tmp_path / "live-state", "other" * 12) is None  # another key: a cold start
    saved = warmset.load(tmp_path / "live-state", KEY, restored)
    counter = saved.families["openstack_usage_device_seconds"]  # the base of the devices counter's hold
    assert counter.rows() == [("s", "raspberrypi4", "reservable", "active", 7.25e6)]


def test_a_set_of_the_previous_format_is_replaced_by_the_first_save(tmp_path):
    directory = tmp_path / "live-state"
    directory.mkdir()
    (directory / "state.json").write_text(json.dumps({"format": "openstack-usage-exporter/live-state/1"}))
    for name in ("published.gauges", "published.counters", "published.spans", "cutoff.counters"):
        pl.DataFrame({"value": [1.0]}).write_parquet(directory / f"{name}.parquet")
    (directory / "tables").mkdir()
    assert warm.published(directory, KEY) is None  # not read: a cold start
    _save(directory)
    assert sorted(path.name for path in directory.iterdir()) == [
        "cutoff.counters.parquet", "cutoff.families", "published.json", "state.json", "tables"]
    assert warm.published(directory, KEY) == PUBLISHED
