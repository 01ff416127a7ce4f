"""The live exporter's own path for future leases: at `now`, the booked-ahead gauges equal the
generator's truth "committed for [now, now + H) as known now" — advance bookings that start after
now included (the reconstruction's spans end at the snapshot, so this cannot come from them)."""

from __future__ import annotations

import polars as pl
import pytest
from prometheus_client import CollectorRegistry

from exporter.adapters.registry import declared_tables
from exporter.config import SiteConfig
from exporter.db import open_engine
from exporter.extract.copy import read_tables
from exporter.live.collector import UsageCollector
from exporter.live.source import usage_from_tables
from exporter.live.render import rendered
from exporter.live.state import SiteState
from exporter.metrics import booked_ahead_name
from exporter.reconstruct.bookings import HORIZONS
from exporter.sitegen import generate_site
from tests.reconstruct.test_leadtime import brute_force_booked


def test_live_booked_ahead_gauges_count_the_leases_that_start_later(tmp_path):
    generated = generate_site(f"sqlite:///{tmp_path}/site.sqlite", truth_dir=tmp_path / "truth", hosts=14,
                              years=0.3, seed=4, quirks={"advance_bookings", "early_deleted_leases"})
    tables = {name: read.frame for name, read in read_tables(open_engine(generated.url, databases=generated.databases),
                                                               declared_tables()).items() if read.frame is not None}
    site = SiteConfig(name="synthetic", display_name="Synthetic", db_url=generated.url, databases=generated.databases,
                      history_start=generated.start)
    now = generated.end
    truth = pl.read_parquet(tmp_path / "truth" / "truth_bookings.parquet").filter(~pl.col("maintenance"))
    assert truth.filter((pl.col("start") > now) & (pl.col("known_from") <= now)).height >= 1  # a future lease
    usage = usage_from_tables(tables, site=site, now=now)
    registry = CollectorRegistry(auto_describe=False)
    state = SiteState(site="synthetic", usage=rendered(usage, None), up=True)
    registry.register(UsageCollector(lambda: [state]))
    checked = 0
    for horizon_name, horizon in HORIZONS.items():
        expected = brute_force_booked(truth.to_dicts(), now, horizon)
        node_types = {labels[1] for labels, _ in state.usage.families[booked_ahead_name("nodes")]}
        for node_type in node_types | set(expected):
            want = expected.get(node_type, [0.0] * 5)
            labels = {"site": "synthetic", "node_type": node_type, "horizon": horizon_name}
            got = [registry.get_sample_value(booked_ahead_name(resource), labels)
                   for resource in ("nodes", "vcpus", "memory_bytes", "disk_bytes", "gpus")]
            assert got == pytest.approx([want[0], want[1], want[2] * 2**20, want[3] * 2**30, want[4]],
                                        rel=1e-9, abs=1e-6), labels
            checked += want[0] > 0
    assert checked >= 3
