"""Instances inside maintenance leases: their host-time is the maintenance leaf, never active/idle.

Operators boot instances on nodes they hold in a maintenance lease (to test them). Counting those
as reservable·active while the host sits in maintenance, not committed, made
idle = committed − occupied negative. The rule (docs/semantics.md): such instances are booked
``maintenance``, keep their occupied level (so levels still match the truth) and feed no leaf.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot
from exporter.sitegen import generate_site
from exporter.reconstruct.audit_timeline import negative_leaves


def test_site_with_maintenance_instances_has_no_negative_leaf(tmp_path):
    # 2023 onwards: no hard-deleted host history, whose losses are documented negative anomalies.
    start = dt.datetime(2023, 1, 1)
    generate_site(f"sqlite:///{tmp_path}/db/main.sqlite", hosts=24, years=1, seed=11, start=start,
                  truth_dir=tmp_path / "truth")
    site = SiteConfig(name="m", display_name="m", db_url=f"sqlite:///{tmp_path}/db/main.sqlite")
    snapshot = extract_snapshot(site, tmp_path / "data").snapshot_dir
    truth = pl.read_parquet(tmp_path / "truth" / "truth_spans.parquet")
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="m", start=start, snapshot_time=dt.datetime(2024, 1, 1)))

    in_maintenance = rec.spans.filter((pl.col("level") == "occupied") & (pl.col("booking") == "maintenance"))
    maintenance_reservations = set(rec.spans.filter(pl.col("level") == "maintenance")["reservation_id"].to_list())
    # the generator does put instances into maintenance leases, and we classify exactly those
    assert in_maintenance.height > 0
    assert set(in_maintenance["reservation_id"].to_list()) <= maintenance_reservations
    reserved = rec.spans.filter((pl.col("level") == "occupied") & (pl.col("booking") == "reservation"))
    assert not set(reserved["reservation_id"].drop_nulls().to_list()) & maintenance_reservations

    assert negative_leaves(rec.timeline).height == 0
    assert rec.audit["timeline"]["node_hours_inside_maintenance"] > 0
    # levels are unchanged by the booking: occupied still matches the truth's occupied hours
    # (up to Blazar's post-lease kills, which the truth keeps and reconstruction clips)
    def occupied_hours(spans):
        end = pl.col("end").fill_null(dt.datetime(2024, 1, 1))
        return spans.filter(pl.col("level") == "occupied").select(
            ((end - pl.col("start")).dt.total_seconds() / 3600 * pl.col("nodes")).sum()).item()
    assert occupied_hours(rec.spans) <= occupied_hours(truth)
    assert occupied_hours(rec.spans) >= 0.99 * occupied_hours(truth)
