"""Three-state pool membership against the generator's pool truth (truth_pools.parquet), which
records, per host-hour, the true pool and whether the written data can decide it.

A generated bare-metal site with hard-deleted Blazar history (before soft deletes) and a real
on-demand pool: reconstructed ondemand node-hours are within 1 % of the true on-demand hours the
data can decide, no truly reservable host-hour is ondemand, and every host-hour the data cannot
decide is unknown (and the audit reports unknown hours).
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot
from exporter.reconstruct.rulesfile import Provenance, Rule
from exporter.sitegen import generate_site

HOST = "hypervisor_hostname"


SITES = {"baremetal": dict(hosts=30, years=5, seed=2), "kvm": dict(hosts=12, years=2.5, seed=4, kind="kvm")}


@pytest.fixture(scope="module", params=sorted(SITES))
def site(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("pools")
    generated = generate_site(f"sqlite:///{root}/main.sqlite", truth_dir=root / "truth", start=dt.datetime(2021, 1, 1),
                              **SITES[request.param])
    snapshot = extract_snapshot(SiteConfig(name="gen", display_name="gen", db_url=generated.url,
                                           databases=generated.databases), root / "snapshots").snapshot_dir
    truth = pl.read_parquet(root / "truth" / "truth_pools.parquet")
    return generated, snapshot, truth, json.loads((root / "truth" / "truth.json").read_text())


def reconstructed(site, **options):
    generated, snapshot, _, _ = site
    return reconstruct_snapshot(snapshot, ReconstructOptions(site="gen", start=generated.start,
                                                             snapshot_time=generated.end, **options))


def overlap_hours(spans: pl.DataFrame, truth: pl.DataFrame, snapshot: dt.datetime) -> float:
    """Hours where ``spans`` (one level: disjoint per host) and ``truth`` rows cover the same host."""
    left = spans.select(HOST, "start", pl.col("end").fill_null(snapshot))
    pairs = left.join(truth.select(HOST, pl.col("start").alias("s"), pl.col("end").alias("e")), on=HOST)
    seconds = (pl.min_horizontal("end", "e") - pl.max_horizontal("start", "s")).dt.total_seconds().clip(lower_bound=0)
    return float(pairs.select(seconds.sum()).item() or 0.0) / 3600


def level(spans: pl.DataFrame, name: str) -> pl.DataFrame:
    return spans.filter(pl.col("level") == name)


def hours(truth: pl.DataFrame) -> float:
    return float(truth.select((pl.col("end") - pl.col("start")).dt.total_seconds().sum()).item()) / 3600


def test_three_pools_against_the_truth(site):
    generated, _, truth, truth_json = site
    rec = reconstructed(site)
    spans, snapshot = rec.spans, generated.end
    # the site has what the rule is about: decidable on-demand time and undecidable time
    decidable_ondemand = truth.filter(pl.col("evidence") == "ondemand")
    undecidable = truth.filter(pl.col("evidence") == "unknown")
    assert hours(decidable_ondemand) > 1000 and hours(undecidable) > 100
    since = truth_json["blazar_history"]["evident_since"]
    assert rec.audit["blazar_history"]["complete_since"] == (None if since is None else since.replace(" ", "T"))

    ondemand = level(spans, "ondemand")
    ondemand_hours = overlap_hours(ondemand, truth, snapshot)  # inside the true existence of the hosts
    assert ondemand_hours == pytest.approx(hours(decidable_ondemand), rel=0.01)
    # no truly reservable host-hour is ondemand
    assert overlap_hours(ondemand, truth.filter(pl.col("pool") == "reservable"), snapshot) == 0.0
    # every host-hour the data cannot decide is neither reservable nor ondemand, but exists: unknown
    assert overlap_hours(level(spans, "reservable"), undecidable, snapshot) == 0.0
    assert overlap_hours(ondemand, undecidable, snapshot) == 0.0
    if generated.kind == "baremetal":  # on KVM the truth also counts hosts only nova.services shows (not yet evidence)
        assert overlap_hours(level(spans, "total"), undecidable, snapshot) == pytest.approx(hours(undecidable),
                                                                                           rel=1e-9)

    # the exported timeline carries the same: ondemand pool = ondemand level, unknown reported in the audit
    nodes = rec.timeline.filter(pl.col("resource") == "nodes")
    by_pool = dict(nodes.group_by(pl.col("pool").cast(pl.String)).agg(pl.col("value").sum()).iter_rows())
    audit_pools = rec.audit["timeline"]["pools"]
    assert audit_pools["node_hours"] == pytest.approx(by_pool, rel=1e-9, abs=1e-5)  # rounded to 6 decimals
    assert sum(audit_pools["unknown_node_hours_by_year"].values()) == pytest.approx(by_pool["unknown"], abs=1e-4)
    if generated.kind == "baremetal":  # the window starts at the site's start: all of it
        assert by_pool["unknown"] >= hours(undecidable) - 1.0


@pytest.mark.parametrize("site", ["baremetal"], indirect=True)  # one site is enough
def test_pools_partition_total_with_a_set_node_type_rule(site):
    """The lost attempt's failure: a relabelling rule must move every pool's hours with the host,
    so per node type the pools still add up to total (the hour invariants hold)."""
    generated, _, truth, _ = site
    host = truth.filter(pl.col("evidence") == "unknown").get_column(HOST)[0]
    rule = Rule(id="relabel", site="gen", action="set_node_type", match=((HOST, (host,)),), value="relabelled",
                start=generated.start, end=generated.start + dt.timedelta(days=900), confidence="direct",
                provenance=Provenance(author="test", date=dt.date(2026, 1, 1), reason="relabel"))
    rec = reconstructed(site, rules=(rule,))
    nodes = rec.timeline.filter(pl.col("resource") == "nodes")
    per_type = nodes.group_by("node_type").agg(pl.col("value").sum())
    spans = rec.spans.filter(pl.col("level") == "total").with_columns(
        ((pl.min_horizontal(pl.col("end").fill_null(generated.end), pl.lit(rec.timeline["timestamp"].max()
                                                                           + dt.timedelta(hours=1)))
          - pl.max_horizontal("start", pl.lit(generated.start))).dt.total_seconds().clip(lower_bound=0) / 3600
         * pl.col("nodes")).alias("h"))
    total = dict(spans.group_by("node_type").agg(pl.col("h").sum()).iter_rows())
    for node_type, value in per_type.iter_rows():
        assert value == pytest.approx(total.get(str(node_type), 0.0), rel=1e-9, abs=1e-6), node_type
    relabelled = nodes.filter(pl.col("node_type") == "relabelled")
    assert relabelled.filter(pl.col("pool") == "unknown")["value"].sum() > 0


@pytest.mark.parametrize("site", ["baremetal"], indirect=True)  # one site is enough
def test_complete_since_override_from_the_config(site):
    never = reconstructed(site, blazar_complete_since="never")
    assert never.audit["blazar_history"]["decided_by"] == "config"
    assert never.audit["blazar_history"]["complete_since"] is None
    derived = reconstructed(site)
    unknown = lambda rec: rec.audit["timeline"]["pools"]["node_hours"]["unknown"]  # noqa: E731
    # with no complete history only instances evidence the on-demand pool: more is unknown
    assert unknown(never) > unknown(derived)
    assert derived.audit["blazar_history"]["derived_from"].startswith("blazar.computehosts id ")
