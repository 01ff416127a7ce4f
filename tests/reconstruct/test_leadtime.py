"""Lead times and the booked-ahead lens against the generator's truth (truth_leases.parquet,
truth_bookings.parquet): per-lease lead times exactly, and "committed for [T, T + H) as known at
T" at random times T, computed here by brute force from the truth bookings."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from exporter.adapters.registry import declared_tables
from exporter.db import open_engine
from exporter.extract.copy import read_tables
from exporter.engine.lookahead import lookahead_means_each
from exporter.reconstruct.bookings import HORIZONS, RESOURCES, booked_ahead
from exporter.reconstruct.leadtime import _node_types, leadtime_timeline
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.sitegen import generate_site

QUIRKS = {"baremetal": {"advance_bookings", "early_deleted_leases", "reallocations", "maintenance_leases",
                        "never_launched", "duplicate_blazar_hosts", "stop_start"},
          "kvm": {"advance_bookings", "early_deleted_leases", "never_launched", "shelve_offload", "resize",
                  "migrations"}}


@pytest.fixture(scope="module", params=sorted(QUIRKS))
def site(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"lead-{request.param}")
    generated = generate_site(f"sqlite:///{root}/site.sqlite", truth_dir=root / "truth", hosts=14, years=0.5,
                              seed=11, kind=request.param, quirks=QUIRKS[request.param])
    tables = {name: read.frame for name, read in read_tables(open_engine(generated.url, databases=generated.databases),
                                                               declared_tables()).items() if read.frame is not None}
    span_set = spans_from_tables(tables, site="synthetic", snapshot_time=generated.end)
    return generated, span_set, root / "truth"


def test_every_lease_has_its_true_lead_times(site):
    generated, span_set, truth_dir = site
    truth = pl.read_parquet(truth_dir / "truth_leases.parquet").filter(~pl.col("maintenance"))
    got = span_set.leadtimes
    assert got["lease_id"].sort().to_list() == truth["lease_id"].sort().to_list()
    joined = got.join(truth, on="lease_id", suffix="_truth")
    for column in ("created_at", "start_date", "first_launch", "first_instance_uuid", "project_id"):
        assert joined[column].to_list() == joined[f"{column}_truth"].to_list(), column
    for row in joined.iter_rows(named=True):
        assert row["requested_lead_time"] == row["start_date_truth"] - row["created_at_truth"]
        launch = row["first_launch_truth"]
        assert row["effective_lead_time"] == (None if launch is None else launch - row["created_at_truth"])
        assert row["start_delay"] == (None if launch is None else launch - row["start_date_truth"])
    # the site has what the lenses are about: advance bookings, some deleted before they start,
    # and leases on which nothing ever launched
    ahead = truth.filter(pl.col("start_date") - pl.col("created_at") > dt.timedelta(hours=1))
    assert ahead.height >= 5
    assert ahead.filter(pl.col("deleted_at") < pl.col("start_date")).height >= 1
    assert joined["effective_lead_time"].null_count() >= 1


def test_the_daily_summary_is_the_statistics_of_that_days_leases(site):
    _, span_set, _ = site
    summary = leadtime_timeline(span_set.leadtimes)
    day = summary["timestamp"].sort()[len(summary) // 2]
    requested = sorted((r.total_seconds() for r, c in zip(span_set.leadtimes["requested_lead_time"],
                                                           span_set.leadtimes["created_at"])
                        if c.date() == day.date()))
    values = dict(summary.filter((pl.col("timestamp") == day) & (pl.col("leadtime_type") == "requested"))
                  .select("statistic", "value").iter_rows())
    assert values["mean"] == pytest.approx(sum(requested) / len(requested), rel=1e-12)
    assert values["p50"] == pytest.approx(_linear_quantile(requested, 0.5), rel=1e-12)
    assert values["p90"] == pytest.approx(_linear_quantile(requested, 0.9), rel=1e-12)


def _linear_quantile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def brute_force_booked(bookings: list[dict], moment: dt.datetime, horizon: dt.timedelta) -> dict:
    """node_type -> (nodes, vcpus, memory_mb, disk_gb, gpus) committed over [T, T + H) as known at T."""
    totals: dict[str, list[float]] = {}
    for b in bookings:
        known = b["known_from"] <= moment and (b["known_until"] is None or moment < b["known_until"])
        overlap = (min(b["end"], moment + horizon) - max(b["start"], moment)).total_seconds()
        if known and overlap > 0:
            sums = totals.setdefault(b["node_type"], [0.0] * 5)
            for i, name in enumerate(("nodes", "vcpus", "memory_mb", "disk_gb", "gpus")):
                sums[i] += b[name] * overlap / horizon.total_seconds()
    return totals


def test_booked_ahead_at_random_times_equals_the_truth_as_known_then(site):
    generated, span_set, truth_dir = site
    truth = pl.read_parquet(truth_dir / "truth_bookings.parquet").filter(~pl.col("maintenance")).to_dicts()
    rng = random.Random(7)
    span = int((generated.end - generated.start).total_seconds())
    moments = sorted({generated.start + dt.timedelta(seconds=rng.randrange(span)) for _ in range(25)})
    moments[0] = max(b["start"] for b in truth if b["known_from"] < b["start"] - dt.timedelta(hours=2)) \
        - dt.timedelta(hours=1)  # at least one T sees an advance booking that has not started
    got = booked_ahead(span_set.bookings, sorted(moments))
    checked = 0
    for name, horizon in HORIZONS.items():
        for moment in moments:
            expected = brute_force_booked(truth, moment, horizon)
            rows = got.filter((pl.col("horizon") == name) & (pl.col("timestamp") == moment))
            values = {row["node_type"]: [row[c] for c in ("nodes", "vcpus", "memory_mb", "disk_gb", "gpus")]
                      for row in rows.iter_rows(named=True)}
            for node_type in set(values) | set(expected):
                want = expected.get(node_type, [0.0] * 5)
                assert values.get(node_type, [0.0] * 5) == pytest.approx(want, rel=1e-9, abs=1e-9), (name, moment)
                checked += any(want)
    assert checked > 20


def test_booked_ahead_rows_are_each_horizons_means_in_the_families_order(site):
    # per key, the horizons' slices in their text order (1d, 30d, 7d): what the families write unsorted
    generated, span_set, _ = site
    grid = [generated.start + k * dt.timedelta(hours=7) for k in range(200)]
    got = booked_ahead(span_set.bookings, grid)
    means = lookahead_means_each(span_set.bookings, keys=("site", "node_type"), weights=RESOURCES, grid=grid,
                                 horizons=list(HORIZONS.values()))
    want = pl.concat([frame.with_columns(horizon=pl.lit(name)) for name, frame in zip(HORIZONS, means)]).select(
        got.columns).sort("site", "node_type", "horizon", "timestamp", maintain_order=True)
    assert got["node_type"].n_unique() > 1
    assert got.equals(want)
    assert got.n_chunks() == 1


def test_a_leases_node_types_are_its_bookings_distinct_named_types_sorted():
    # both ways of spelling them: bits of a few types, the text per lease past 64 types
    for extra in (0, 70):
        others = [f"t{n:03d}" for n in range(extra)]
        rows = [("a", "z"), ("a", "b"), ("a", "z"), ("b", None), ("c", None), ("c", "b"), ("d", "b")]
        rows += [("e", name) for name in reversed(others)]
        bookings = pl.DataFrame(rows, schema={"lease_id": pl.String, "node_type": pl.String}, orient="row")
        got = dict(_node_types(bookings).collect().rows())
        assert got == {"a": "b,z", "b": "", "c": "b", "d": "b", **({"e": ",".join(others)} if others else {})}


def test_node_types_when_no_booking_names_a_type_or_there_are_no_bookings():
    schema = {"lease_id": pl.String, "node_type": pl.String}
    for rows, want in (([("b", None)], {"b": ""}), ([("b", None), ("c", None), ("b", None)], {"b": "", "c": ""}),
                       ([], {})):
        bookings = pl.DataFrame(rows, schema=schema, orient="row")
        assert dict(_node_types(bookings).collect().rows()) == want
        # what the per-lease text gave (81b4c85)
        text = bookings.group_by("lease_id").agg(pl.col("node_type").unique().sort().str.join(","))
        assert dict(text.rows()) == want
