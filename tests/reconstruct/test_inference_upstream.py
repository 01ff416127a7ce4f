"""On an upstream-Blazar site (hard deletes, no soft-delete columns) inference recovers what
the reserved instances prove, and the run says loudly what Blazar lost."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest

from exporter.adapters.blazar_schema import missing_soft_delete
from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot
from exporter.sitegen import generate_site

START = dt.datetime(2023, 1, 1)


def node_hours(spans: pl.DataFrame, end: dt.datetime) -> dict[str, float]:
    hours = (pl.col("end").fill_null(pl.lit(end)) - pl.col("start")).dt.total_seconds(fractional=True) / 3600
    return dict(spans.group_by("level").agg((hours * pl.col("nodes")).sum()).iter_rows())


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    site = generate_site(f"sqlite:///{root}/site.sqlite", hosts=8, years=0.5, seed=11, start=START,
                         truth_dir=root / "truth", blazar="upstream_purged")
    config = SiteConfig(name="up", display_name="up", db_url=site.url, databases=site.databases)
    snapshot = extract_snapshot(config, root / "snapshots", snapshot_id="s").snapshot_dir
    return site, snapshot, json.loads((site.truth_dir / "truth.json").read_text())


def test_run_warns_and_recovers_reserved_occupancy_and_commitments(upstream):
    site, snapshot, truth = upstream
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="up", start=START, snapshot_time=site.end))
    warning = [w for w in rec.audit["warnings"] if "no soft-delete columns" in w]
    assert len(warning) == 1 and "blazar.computehost_allocations" in warning[0]
    assert rec.audit["inference"] is True
    rebuilt = node_hours(rec.spans, site.end)
    assert rebuilt["occupied"] >= 0.95 * truth["node_hours"]["occupied"]
    inferred = rec.spans.filter(pl.col("source") == "inference")
    recovered = node_hours(inferred, site.end)
    assert recovered["committed"] >= truth["blazar"]["provable_committed_node_hours"]
    assert inferred.height and set(inferred["level"]) <= {"reservable", "committed", "maintenance"}


def test_inference_off_shows_the_loss(upstream):
    site, snapshot, truth = upstream
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="up", start=START, snapshot_time=site.end,
                                                            inference="off"))
    assert node_hours(rec.spans, site.end).get("committed", 0.0) < 0.2 * truth["node_hours"]["committed"]


def test_extract_says_the_same_one_line_as_reconstruct(upstream, tmp_path):
    site, snapshot, _ = upstream
    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n  up:\n    db_url: {site.url}\n")
    result = subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", "extract", "--site", "up",
                             "--config", str(config), "--snapshot-id", "cli", "--quiet"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "soft-delete" in line]
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="up", start=START, snapshot_time=site.end))
    assert said == [f"warning: {w}" for w in rec.audit["warnings"] if "soft-delete" in w]
    assert "blazar.computehost_allocations" in said[0] and "cannot be recovered" in said[0]


def test_only_a_blazar_without_deleted_at_on_its_allocations_is_upstream():
    fork = {"blazar.leases": ["id", "deleted", "deleted_at"], "blazar.computehost_allocations": ["id", "deleted_at"]}
    assert missing_soft_delete(fork) == []
    assert missing_soft_delete({**fork, "blazar.computehost_allocations": ["id"]}) == ["blazar.computehost_allocations"]
    assert missing_soft_delete({"blazar.leases": ["id"], "blazar.computehost_allocations": []}) == []  # not read
