"""The README's main job: `usage-exporter demo` on the embedded default, end to end."""

from __future__ import annotations

import datetime as dt
import json

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
