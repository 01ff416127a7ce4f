"""The README's main job: `usage-exporter demo` on the embedded default, end to end."""

from __future__ import annotations

import datetime as dt
import json

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
        assert manifest["samples"] > 0
        # the cut-off leaves the newest hours to the live exporter
        # the timeline ends when the simulated history ends, and the newest hours are left to the live exporter
        assert dt.datetime.fromisoformat(manifest["cutoff"].rstrip("Z")) <= dt.datetime(2026, 1, 5) + dt.timedelta(days=0.2 * 365) - dt.timedelta(hours=3)
    assert "usage-exporter serve --config" in result.output


def test_demo_comparison_matches_truth_up_to_the_quantified_blazar_kills(tmp_path):
    from exporter.demo import run_demo

    result = run_demo(tmp_path / "demo", years=0.2, start=dt.datetime(2026, 1, 5), blocks=False)
    for item in result.sites:
        table = {row["level"]: row for row in item.versus_truth.iter_rows(named=True)}
        # after 2022 no history was hard-deleted, so host and lease levels are recovered exactly
        for level in ("total", "reservable", "committed", "maintenance"):
            row = table.get(level, {"truth": 0.0, "reconstructed": 0.0})  # a level absent on both sides
            assert row["reconstructed"] == pytest.approx(row["truth"], rel=1e-9, abs=1e-6), level
        truth = json.loads((item.generated.truth_dir / "truth.json").read_text())
        killed = truth["quirks"]["killed_by_blazar"]["hours"].get("lost_occupied_node_hours", 0.0)
        occupied = table["occupied"]
        # the only occupied loss is the minutes Blazar's kills ran past the lease (clipped)
        assert occupied["reconstructed"] == pytest.approx(occupied["truth"] - killed, rel=1e-9, abs=2e-3)
