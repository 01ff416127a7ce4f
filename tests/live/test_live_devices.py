"""The live devices counter continues the backfilled one: same base, same past, never lower, and
no series vanishes to come back lower (Zun hard-deletes containers, and the states they made).

A generated CHI@Edge site (SQLite, ending now) is reconstructed; ``families/openstack_usage_device_seconds``
is exactly what the backfill sends. The live exporter's computation over the same database, asked
for a grid time of that history, must give the same counter for every series (the same origin and
the same rules: otherwise the first scrape after the backfill would jump, down being a reset); and
its refreshes now, full then incremental, never go below the last backfilled value nor below
what they served before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sqlite3

import polars as pl
import pytest

from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.layout import family_file
from exporter.live.render import rendered
from exporter.live.source import LiveSite, usage_from_tables
from exporter.metrics import DEVICE_LABELS, DEVICE_SECONDS
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_to_directory
from exporter.sitegen import generate_site
from exporter.timeutil import utc_now

DAYS = 12


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """(site config, the backfilled device-seconds frame) of a generated edge site ending now (its
    SQLite files in their own directory, so a test can copy them)."""
    root = tmp_path_factory.mktemp("live-devices")
    (root / "db").mkdir()
    start = (utc_now() - dt.timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    generated = generate_site(f"sqlite:///{root}/db/edge.sqlite", hosts=8, years=DAYS / 365, seed=7, start=start,
                              truth_dir=root / "truth", kind="edge", quirks=set())
    site = SiteConfig(name="edge", display_name="edge", db_url=generated.url, databases=generated.databases,
                      kind="edge", history_start=start, refresh_interval=1.0, query_timeout=10.0)
    snapshot = extract_snapshot(site, root / "data", snapshot_id="s").snapshot_dir
    reconstruct_to_directory(snapshot, ReconstructOptions(site="edge", start=start), root / "out")
    return site, pl.read_parquet(family_file(root / "out", DEVICE_SECONDS.name))


def by_series(frame: pl.DataFrame) -> dict[tuple, float]:
    return {row[:-1]: row[-1] for row in frame.select(*DEVICE_LABELS, "value").iter_rows()}


def test_live_counter_at_a_grid_time_is_the_backfilled_one(edge):
    site, backfilled = edge
    live = LiveSite(site)
    try:
        tables = live.tables.refresh(utc_now())
        hours = backfilled.get_column("timestamp").unique().sort()
        for at in (hours[1], hours[len(hours) // 2], hours[-1]):
            expected = by_series(backfilled.filter(pl.col("timestamp") == at))
            computed = by_series(usage_from_tables(tables, site=site, now=at).families[DEVICE_SECONDS.name])
            assert computed.keys() <= expected.keys()  # a series with nothing yet is absent live, 0 backfilled
            for key, value in expected.items():
                assert computed.get(key, 0.0) == pytest.approx(value, rel=1e-12, abs=1e-6), (at, key)
    finally:
        live.close()


def test_live_refreshes_never_go_below_the_backfill_or_what_they_served(edge):
    site, backfilled = edge
    last = by_series(backfilled.filter(pl.col("timestamp") == pl.col("timestamp").max()))
    live = LiveSite(site)
    served: dict[tuple, float] = {}
    try:
        for _ in range(4):
            counters = by_series(live(utc_now()).families[DEVICE_SECONDS.name])
            assert counters.keys() >= last.keys()
            assert all(counters[key] >= value for key, value in last.items())
            assert all(counters[key] >= value for key, value in served.items())
            served = counters
        assert live.tables.last_mode == "incremental"
    finally:
        live.close()


def test_a_model_whose_devices_were_hard_deleted_keeps_its_counters(edge, tmp_path):
    """An operator deletes the devices of one model (rows gone, with their capabilities and
    allocations, as Blazar without soft delete does): at the next full reload that model's past is
    gone from the recomputation. Its counters hold their served values (as the node counters do)
    instead of vanishing, to come back from a lower value (a reset) when a device of it returns."""
    site, _ = edge
    shutil.copytree(site.db_url.removeprefix("sqlite:///").rsplit("/", 1)[0], tmp_path / "db")
    site = dataclasses.replace(site, db_url=f"sqlite:///{tmp_path}/db/edge.sqlite")
    live = LiveSite(site, full_reload_interval=0.0)  # every refresh a full reload
    try:
        served = by_series(live(utc_now()).families[DEVICE_SECONDS.name])
        model = sorted({key[1] for key in served})[-1]
        with sqlite3.connect(tmp_path / "db" / f"{site.databases.get('blazar', 'blazar')}.sqlite") as blazar:
            ids = [row[0] for row in blazar.execute(
                "SELECT c.device_id FROM device_extra_capabilities c JOIN resource_properties p ON p.id = c.property_id "
                "WHERE p.property_name = 'machine_name' AND c.capability_value = ?", (model,))]
            assert ids
            for table, column in (("device_allocations", "device_id"), ("device_extra_capabilities", "device_id"),
                                  ("devices", "id")):
                blazar.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
        again = live(utc_now())
        assert live.tables.last_mode == "full"
        recomputed = usage_from_tables(live.tables.refresh(utc_now()), site=site, now=again.at)
        gone = served.keys() - by_series(recomputed.families[DEVICE_SECONDS.name]).keys()
        assert gone and {key[1] for key in gone} == {model}  # the scenario: the model's series are gone
        counters = by_series(again.families[DEVICE_SECONDS.name])
        assert counters.keys() >= served.keys()
        assert all(counters[key] >= value for key, value in served.items())
        assert all(counters[key] == served[key] for key in gone)  # held at what was served
        # and openstack_usage_counters_held counts them, with the node series held
        assert again.families_held >= len(gone)
        assert rendered(again, None).counters_held == again.families_held
    finally:
        live.close()
