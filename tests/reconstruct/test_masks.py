"""Maintenance masks from Blazar's reservable flag against the generator's truth.

The generator takes hosts out of reservation (``computehosts.reservable = 0``) at random, keeps
the flag's history in ``openstack_audit.audit_blazar_computehosts`` from 2025-06-01 on, and records
in truth.json the flag-down node-hours, the part under a lease (stays committed) and the part
the data cannot show (before the audit triggers, unless the flag was still down at the row's
end or the snapshot). The reconstructed masks must be exactly the rest, inside the true masks.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.adapters.registry import declared_tables
from exporter.db import open_engine
from exporter.extract.copy import read_tables
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.reconstruct.timeline import timeline_from_spans
from exporter.sitegen import generate_site

MASK_TABLES = ("blazar.computehosts", "openstack_audit.audit_blazar_computehosts")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("masks")
    generated = generate_site(f"sqlite:///{root}/main.sqlite", truth_dir=root / "truth", hosts=20, years=2, seed=6,
                              start=dt.datetime(2024, 6, 1), quirks={"maintenance_flag"})
    tables = {name: read.frame for name, read in read_tables(open_engine(generated.url, databases=generated.databases),
                                                               declared_tables()).items() if read.frame is not None}
    result = spans_from_tables(tables, site="gen", snapshot_time=generated.end)
    truth = json.loads((root / "truth" / "truth.json").read_text())
    return generated, result, truth, pl.read_parquet(root / "truth" / "truth_spans.parquet")


def masks(spans: pl.DataFrame) -> pl.DataFrame:
    return spans.filter((pl.col("level") == "maintenance") & pl.col("lease_id").is_null())


def node_hours(spans: pl.DataFrame, snapshot: dt.datetime) -> float:
    hours = (pl.col("end").fill_null(snapshot) - pl.col("start")).dt.total_seconds() / 3600 * pl.col("nodes")
    return float(spans.select(hours.sum()).item() or 0.0)


def test_masks_are_the_recoverable_flag_down_time_outside_leases(site):
    generated, result, truth, truth_spans = site
    flag = truth["quirks"]["maintenance_flag"]["hours"]
    assert flag["flag_down_node_hours"] > 0 and flag["under_commitment_node_hours"] > 0
    reconstructed = masks(result.spans)
    assert set(reconstructed["source_table"]) <= set(MASK_TABLES)
    assert set(reconstructed["span_type"]) == {"maintenance_mask"} and set(reconstructed["confidence"]) == {"direct"}
    assert set(reconstructed["evidence"]) <= {"blazar_computehost", "blazar_computehost_audit"}
    expected = flag["flag_down_node_hours"] - flag["under_commitment_node_hours"] - flag["lost_mask_node_hours"]
    assert node_hours(reconstructed, generated.end) == pytest.approx(expected, abs=3e-3)
    # every reconstructed mask hour is a true mask hour (per host)
    true_masks = masks(truth_spans).select("hypervisor_hostname", pl.col("start").alias("s"),
                                          pl.col("end").fill_null(generated.end).alias("e"))
    pairs = reconstructed.join(true_masks, on="hypervisor_hostname")
    inside = (pl.min_horizontal(pl.col("end").fill_null(generated.end), "e") - pl.max_horizontal("start", "s"))
    overlap = pairs.select(inside.dt.total_seconds().clip(lower_bound=0).sum()).item() / 3600
    assert overlap == pytest.approx(node_hours(reconstructed, generated.end), abs=1e-6)


def test_mask_time_under_a_lease_stays_committed_and_is_recorded(site):
    generated, result, _, _ = site
    clipped = [e for e in result.audit["clipped"] if e["reason"] == "under_commitment"]
    rejected = [e for e in result.audit["rejected"] if e["reason"] == "under_commitment"]
    assert sum(e["hours"] for e in clipped + rejected) > 0
    assert {e["level"] for e in clipped + rejected} == {"maintenance"}
    # no leaf goes negative, and the leaves still add up to total (the hours invariant per level)
    end = generated.end.replace(minute=0, second=0, microsecond=0)
    timeline = timeline_from_spans(result.spans, start=generated.start, end=end, step=dt.timedelta(hours=1),
                                   open_end=generated.end)
    reservable = timeline.filter(pl.col("pool") == "reservable", pl.col("resource") == "nodes")
    assert reservable["value"].min() > -1e-9
    total = timeline.filter(pl.col("resource") == "nodes")["value"].sum()
    spans = result.spans.filter(pl.col("level") == "total").with_columns(
        pl.min_horizontal(pl.col("end").fill_null(generated.end), pl.lit(end)).alias("end"),
        pl.max_horizontal("start", pl.lit(generated.start)).alias("start"))
    assert total == pytest.approx(node_hours(spans.filter(pl.col("end") > pl.col("start")), generated.end), rel=1e-9)


def test_without_the_audit_table_only_the_current_flag_is_known(site):
    generated, result, truth, _ = site
    tables = {name: read.frame for name, read in read_tables(open_engine(generated.url, databases=generated.databases),
                                                               declared_tables()).items()
              if read.frame is not None and not name.startswith("openstack_audit.")}
    current = masks(spans_from_tables(tables, site="gen", snapshot_time=generated.end).spans)
    assert set(current["source_table"]) <= {"blazar.computehosts"} and set(current["evidence"]) <= {"blazar_computehost"}
    assert node_hours(current, generated.end) < node_hours(masks(result.spans), generated.end)
