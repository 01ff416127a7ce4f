"""The README's main job: `usage-exporter demo` on the embedded default, end to end."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from click.testing import CliRunner

from exporter.cli import cli
from exporter.demo import DEMO_SITES


def test_demo_runs_every_stage_for_every_site_and_reports_truth(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--years", "0.2", "--start", "2026-01-05",
                                      "--no-blocks", "--quiet"])
    assert result.exit_code == 0, result.output
    for site in DEMO_SITES:
        assert f"== {site.name} ({site.kind})" in result.output
        site_out = out / "data" / site.name / "out"
        assert (site_out / "timeline" / "timeline.parquet").stat().st_size > 0
        manifest = json.loads((site_out / "backfill" / "backfill.json").read_text())
        family_samples = sum(counts["samples"] for counts in manifest["families"].values())
        assert manifest["samples"] + family_samples > 0
        if site.kind == "edge":  # no Nova: no node series, the devices family instead
            assert manifest["samples"] == 0 and manifest["families"]["openstack_usage_devices"]["samples"] > 0
        # the cut-off leaves the newest hours to the live exporter
        # the timeline ends when the simulated history ends, and the newest hours are left to the live exporter
        assert dt.datetime.fromisoformat(manifest["cutoff"].rstrip("Z")) <= dt.datetime(2026, 1, 5) + dt.timedelta(days=0.2 * 365) - dt.timedelta(hours=3)
    assert "usage-exporter serve --config" in result.output


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    from exporter.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo"), years=0.2, start=dt.datetime(2026, 1, 5), blocks=False)


def test_demo_comparison_matches_truth_up_to_the_quantified_blazar_kills(demo_result):
    result = demo_result
    for item in result.sites:
        table = {row["level"]: row for row in item.versus_truth.iter_rows(named=True)}
        if item.site.kind == "edge":  # device-hours: the recoverable truth (truth + lost), every level
            for level, row in table.items():
                assert row["reconstructed"] == pytest.approx(row["truth"] + row["rules"], rel=1e-9, abs=1e-6), level
            continue
        # after 2022 no history was hard-deleted, so host and lease levels are recovered exactly
        for level in ("total", "reservable", "committed", "maintenance"):
            row = table.get(level, {"truth": 0.0, "rules": 0.0, "reconstructed": 0.0})  # absent on both sides
            # the truth less exactly the host-time the demo's exclude rule leaves out
            assert row["reconstructed"] == pytest.approx(row["truth"] + row["rules"], rel=1e-9, abs=1e-6), level
        truth = json.loads((item.generated.truth_dir / "truth.json").read_text())
        killed = truth["quirks"]["killed_by_blazar"]["hours"].get("lost_occupied_node_hours", 0.0)
        occupied = table["occupied"]
        # The only occupied loss is the minutes Blazar's kills ran past the lease (clipped). The
        # rule's effect is the truth's host-time in its range, kill minutes included, which the
        # reconstruction never had: so the loss is at most the kill minutes, and exactly them
        # when the rule's range holds none (the KVM site has no rule).
        expected = occupied["truth"] + occupied["rules"]
        assert expected - killed - 2e-3 <= occupied["reconstructed"] <= expected + 2e-3
        if item.rule is None:
            assert occupied["reconstructed"] == pytest.approx(expected - killed, rel=1e-9, abs=2e-3)


def test_demo_prints_the_three_pools_against_the_truth(demo_result):
    from exporter.demo import summary_text

    hosts = [item for item in demo_result.sites if item.site.kind != "edge"]  # every device is reservable
    for item in hosts:
        pools = {row["pool"]: row for row in item.pools.iter_rows(named=True)}
        assert set(pools) == {"reservable", "ondemand", "unknown"}
        # ondemand within 1 % of what the data decides (less the rule's cut); unknown holds at
        # least every hour the data cannot decide
        ondemand = pools["ondemand"]
        assert ondemand["reconstructed"] == pytest.approx(ondemand["decidable"] + ondemand["rules"], rel=0.01, abs=1)
        assert pools["unknown"]["reconstructed"] >= pools["unknown"]["decidable"] + pools["unknown"]["rules"] - 1e-6
        assert ondemand["reconstructed"] <= ondemand["truth"] + 1e-6
    summary = summary_text(demo_result)
    assert summary.count("node-hours per pool") == len(hosts)
    assert "   unknown " in summary


def test_the_demo_rule_is_visible_in_the_output_and_traceable(demo_result):
    from exporter.demo import RULED_SITE, summary_text

    result = demo_result
    ruled = {item.site.name: item for item in result.sites}
    item = ruled.pop(RULED_SITE)
    assert all(other.rule is None for other in ruled.values())
    effect = {row["level"]: row["rules"] for row in item.versus_truth.iter_rows(named=True)}
    # one node for three weeks (at most 15 % of the period): its host-time leaves every level it had
    days = (item.rule.end - item.rule.start).total_seconds() / 86400
    assert effect["total"] == pytest.approx(-24 * days) and effect["reservable"] < 0 and effect["occupied"] < 0
    rejected = pl.read_parquet(item.run.timeline_dir / "rejected.parquet").filter(pl.col("rule_id") == item.rule.id)
    assert set(rejected["rejection_reason"]) == {"manual_rule"} and set(rejected["level"]) >= {"total", "occupied"}
    text = (result.out_dir / "rules.yaml").read_text()
    assert text.startswith("# Written by `usage-exporter demo`") and f"hypervisor_hostname: {item.rule.host}" in text
    summary = summary_text(result)
    assert f"{item.rule.id!r} excludes node {item.rule.host}" in summary
    assert " -0 " not in summary  # a level the rule does not touch shows 0


def test_the_kvm_demo_site_shows_its_shelved_resized_and_moved_instances(demo_result):
    import json

    from exporter.demo import summary_text

    kvm = next(item for item in demo_result.sites if item.site.kind == "kvm")
    quirks = json.loads((kvm.generated.truth_dir / "truth.json").read_text())["quirks"]
    counts = [quirks[name]["count"] for name in ("shelve_offload", "resize", "migrations")]
    assert all(count > 0 for count in counts)
    assert (f"   lifecycles {counts[0]:,} shelve-offloads, {counts[1]:,} resizes, {counts[2]:,} migrations"
            in summary_text(demo_result))


@pytest.mark.parametrize("value, text", [(-0.0001, "+0.00%"), (-0.0, "+0.00%"), (0.004, "+0.00%"),
                                         (-0.006, "-0.01%"), (12.345, "+12.35%"), (None, "")])
def test_differences_that_round_to_zero_print_without_a_minus_sign(value, text):
    from exporter.demo import percent_text
    assert percent_text(value) == text


def test_the_edge_demo_site_is_realistic_and_its_audit_bounds_what_zun_deleted(demo_result):
    """The demo's edge site is generated as Chameleon's Zun behaves (containers of ended leases
    removed); the output prints the audit's bound, and it holds against the truth's loss."""
    from exporter.demo import summary_text

    (edge,) = [item for item in demo_result.sites if item.site.kind == "edge"]
    truth = json.loads((edge.generated.truth_dir / "truth.json").read_text())
    assert truth["params"]["quirks"] == ["zun_auto_remove", "zun_pause_kill"]
    removed = truth["device_hours_unrecoverable"]["zun_auto_removed"]["occupied"]
    audit = json.loads((edge.run.timeline_dir / "audit.json").read_text())["devices"]
    assert audit["committed_hours_without_container"] >= removed > 0
    assert (f"   audit     {audit['committed_hours_without_container']:,.0f} committed device-hours have no "
            "container row left") in summary_text(demo_result)
