"""backfill(): per-window files, holdback cut-off, manifest, determinism, promtool blocks, CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys

import polars as pl
import pytest
from click.testing import CliRunner

from exporter.backfill.blocks import backfill
from exporter.cli import cli
from exporter.errors import TimelineError
from exporter.backfill.openmetrics import render_openmetrics
from tests.backfill.timelines import synthetic_timeline, write_timeline

START = dt.datetime(2024, 1, 1)
HOURS = 24 * 15  # 15 days: with 54h windows that is several files, not aligned to the start
NOW = dt.datetime(2030, 1, 1)  # well after the timeline: the cut-off follows the timeline's end


@pytest.fixture(scope="module")
def timeline_dir(tmp_path_factory):
    frame = synthetic_timeline(start=START, hours=HOURS, node_types=("a", "b"), resources=("nodes", "vcpus"))
    return write_timeline(frame, tmp_path_factory.mktemp("timeline"))


def sample_lines(data: bytes) -> list[str]:
    return [line for line in data.decode().splitlines() if not line.startswith("#")]


def test_files_are_epoch_aligned_windows_that_together_hold_the_timeline(timeline_dir, tmp_path):
    result = backfill(timeline_dir, tmp_path, block_hours=54, now=NOW)
    end = START + dt.timedelta(hours=HOURS)
    assert result.cutoff == end - dt.timedelta(hours=3)
    whole = sample_lines(render_openmetrics(pl.read_parquet(timeline_dir / "timeline.parquet"), job="openstack-usage",
                                            instance="openstack-usage-exporter"))
    cutoff_s = int((result.cutoff - dt.datetime(1970, 1, 1)).total_seconds())
    expected = sorted(line for line in whole if int(line.rsplit(" ", 1)[1]) < cutoff_s)
    written = []
    for info in result.files:
        data = (tmp_path / info.path).read_bytes()
        assert data.endswith(b"\n# EOF\n")
        lines = sample_lines(data)
        stamps = {int(line.rsplit(" ", 1)[1]) for line in lines}
        window = int((info.window_start - dt.datetime(1970, 1, 1)).total_seconds())
        assert window % (54 * 3600) == 0
        assert window <= min(stamps) and max(stamps) < window + 54 * 3600
        assert info.samples == len(lines)
        written += lines
    assert sorted(written) == expected
    assert result.samples == len(expected)
    assert result.last_sample == result.cutoff - dt.timedelta(hours=1)


def test_holdback_counts_back_from_now_when_now_is_before_the_timeline_end(timeline_dir, tmp_path):
    now = START + dt.timedelta(days=5, minutes=30)
    result = backfill(timeline_dir, tmp_path, holdback=dt.timedelta(hours=6), now=now)
    assert result.cutoff == now - dt.timedelta(hours=6)
    assert result.last_sample == dt.datetime(2024, 1, 5, 18)  # last grid hour before 18:30
    manifest = json.loads((tmp_path / "backfill.json").read_text())
    assert manifest["cutoff"] == "2024-01-05T18:30:00Z"
    assert manifest["last_sample"] == "2024-01-05T18:00:00Z"
    assert manifest["holdback_seconds"] == 6 * 3600


def test_rerun_gives_byte_identical_files_and_manifest(timeline_dir, tmp_path):
    first = backfill(timeline_dir, tmp_path / "one", block_hours=54, now=NOW)
    second = backfill(timeline_dir, tmp_path / "two", block_hours=54, now=NOW)
    again = backfill(timeline_dir, tmp_path / "one", block_hours=54, now=NOW)
    for a, b in zip(first.files, second.files):
        assert (tmp_path / "one" / a.path).read_bytes() == (tmp_path / "two" / b.path).read_bytes()
        assert a.sha256 == hashlib.sha256((tmp_path / "two" / b.path).read_bytes()).hexdigest()
    assert (tmp_path / "one" / "backfill.json").read_text() == (tmp_path / "two" / "backfill.json").read_text()
    assert [f.path for f in again.files] == [f.path for f in first.files]


def test_rerun_with_other_windows_removes_the_previous_files(timeline_dir, tmp_path):
    backfill(timeline_dir, tmp_path, block_hours=54, now=NOW)
    result = backfill(timeline_dir, tmp_path, block_hours=162, now=NOW)
    assert sorted(p.name for p in (tmp_path / "openmetrics").iterdir()) == sorted(
        f.path.split("/")[1] for f in result.files)


def test_mimir_uses_six_hour_windows_and_rejects_longer_blocks(timeline_dir, tmp_path):
    result = backfill(timeline_dir, tmp_path, mimir=True, now=NOW)
    assert result.block_hours == 6
    assert all(f.window_end - f.window_start == dt.timedelta(hours=6) for f in result.files)
    with pytest.raises(TimelineError, match="at most 24h"):
        backfill(timeline_dir, tmp_path, mimir=True, block_hours=54, now=NOW)
    with pytest.raises(TimelineError, match="not one promtool can make"):
        backfill(timeline_dir, tmp_path, block_hours=100, now=NOW)


def test_everything_inside_the_holdback_is_an_error(timeline_dir, tmp_path):
    with pytest.raises(TimelineError, match="nothing to backfill"):
        backfill(timeline_dir, tmp_path, now=START + dt.timedelta(hours=2))


@pytest.mark.prometheus
def test_blocks_one_per_file_inside_its_window(timeline_dir, tmp_path, promtool):
    result = backfill(timeline_dir, tmp_path, blocks=True, promtool=promtool, block_hours=54, now=NOW)
    assert result.blocks_created and len(result.blocks) == len(result.files)
    total = 0
    for info in result.files:
        (ulid,) = info.blocks
        meta = json.loads((tmp_path / "blocks" / ulid / "meta.json").read_text())
        start_ms = int((info.window_start - dt.datetime(1970, 1, 1)).total_seconds()) * 1000
        assert start_ms <= meta["minTime"] and meta["maxTime"] <= start_ms + 54 * 3600 * 1000
        assert meta["stats"]["numSamples"] == info.samples
        total += info.samples
    assert total == result.samples
    assert sorted(p.name for p in (tmp_path / "blocks").iterdir()) == sorted(result.blocks)
    again = backfill(timeline_dir, tmp_path, blocks=True, promtool=promtool, block_hours=54, now=NOW)
    assert set(again.blocks).isdisjoint(result.blocks)  # the re-run replaced the old blocks
    assert sorted(p.name for p in (tmp_path / "blocks").iterdir()) == sorted(again.blocks)


def test_negative_leaves_are_kept_and_counted(tmp_path):
    frame = synthetic_timeline(start=START, hours=10, node_types=("a",), resources=("nodes",))
    frame = frame.with_columns(value=pl.when((pl.col("state") == "idle") & (pl.col("timestamp") == START))
                               .then(-1.0).otherwise(pl.col("value")))
    result = backfill(write_timeline(frame, tmp_path / "tl"), tmp_path / "out", now=NOW)
    assert result.negative_samples == 1
    text = (tmp_path / "out" / result.files[0].path).read_text()
    assert 'state="idle"} -1.0 1704067200' in text
    assert 'openstack_usage_node_seconds_total{' in text and 'state="idle"} -3600.0 1704070800' in text


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_without_promtool_prints_the_exact_commands_and_next_steps(timeline_dir, tmp_path):
    out = tmp_path / "out"
    done = run_cli("backfill", str(timeline_dir), "--out", str(out), "--blocks", "--promtool",
                   str(tmp_path / "no-such-promtool"), "--quiet")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "promtool not found" in done.stderr
    manifest = json.loads((out / "backfill.json").read_text())
    for entry in manifest["files"]:
        command = (f"{tmp_path / 'no-such-promtool'} tsdb create-blocks-from openmetrics "
                   f"--max-block-duration=1458h {out / entry['path']} {out / 'blocks'}")
        assert command in done.stdout
    assert "--storage.tsdb.retention.time=15y" in done.stdout
    assert "thanos tools bucket upload-blocks" in done.stdout and "mimirtool backfill" in done.stdout


def test_cli_malformed_timeline_is_one_line(tmp_path):
    write_timeline(synthetic_timeline(start=START, hours=3, node_types=("a",), resources=("nodes",))
                   .drop("pool"), tmp_path / "bad")
    done = run_cli("backfill", str(tmp_path / "bad"), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: timeline is missing column(s): pool"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "timeline.parquet").write_text("not parquet")
    done = run_cli("backfill", str(tmp_path / "junk"), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "cannot read" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("backfill", str(tmp_path), "--out", str(tmp_path / "out"))
    assert "no timeline at" in done.stderr


def test_cli_takes_holdback_and_labels_from_the_site_config(timeline_dir, tmp_path):
    config = tmp_path / "sites.yaml"
    config.write_text("job: myjob\ninstance: myinst\nsites:\n  uc:\n    db_url: sqlite:///x.sqlite\n"
                      "    history_start: 2024-01-01\n    live_holdback_hours: 5\n")
    result = CliRunner().invoke(cli, ["backfill", str(timeline_dir), "--out", str(tmp_path / "o"), "--site", "uc",
                                      "--config", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "backfill.json").read_text())
    assert manifest["holdback_seconds"] == 5 * 3600 and manifest["job"] == "myjob"
    assert "cut-off 2024-01-15 19:00 UTC" in result.output
    data = (tmp_path / "o" / manifest["files"][0]["path"]).read_text()
    assert 'instance="myinst",job="myjob"' in data


def test_cli_run_reports_config_problems_in_one_line(tmp_path):
    done = run_cli("run", "--site", "nowhere", "--config", str(tmp_path / "missing.yaml"), "--quiet")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: config file {tmp_path / 'missing.yaml'} not found"
    config = tmp_path / "sites.yaml"
    config.write_text("sites:\n  uc:\n    db_url: sqlite:///x.sqlite\n")
    done = run_cli("run", "--site", "other", "--config", str(config), "--quiet")
    assert done.stderr.strip() == "error: unknown site 'other' (configured: uc)"
