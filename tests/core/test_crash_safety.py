"""Kill every stage at every named fault point (exporter.faults), then rerun: the output equals a
clean run's byte for byte, no promtool outlives its backfill, no unlisted block or staging
directory remains, and until the new set is complete the previous one stays whole."""

from __future__ import annotations

import json
import shutil

import pytest

from exporter.faults import ENVIRONMENT
from exporter.snapshots import newest_snapshot, verify_snapshot
from tests.core.crash_support import (SNAPSHOT_ID, backfill_view, cli, orphans_after, promtool_processes,
                                      run_main, staging_leftovers, tree)

pytestmark = pytest.mark.prometheus

KILLED = -9
INTERRUPTED = 130


def snapshot_view(snapshot) -> dict:
    """A snapshot without its timestamps (when it was taken): table files, manifest tables."""
    manifest = json.loads((snapshot / "manifest.json").read_text())
    return {"files": tree(snapshot, skip=("manifest.json",)), "tables": manifest["tables"],
            "complete": manifest["complete"]}


@pytest.mark.parametrize("point", ["extract:after-first-table", "extract:before-manifest", "extract:before-publish"])
def test_extract_killed_leaves_no_snapshot_and_a_rerun_equals_a_clean_one(tiny_site, tmp_path, point):
    data = tmp_path / "data"
    killed = cli(*tiny_site.extract_args(data), fault=point)
    assert killed.returncode == KILLED, killed.stderr
    site_dir = data / "default"
    assert staging_leftovers(site_dir), "the killed run's temporary directory should still be there"
    with pytest.raises(Exception, match="no complete snapshot"):
        newest_snapshot(site_dir)  # a killed extract's temporary directory is never "newest"

    assert run_main(*tiny_site.extract_args(data)) == 0
    assert staging_leftovers(site_dir) == []
    assert newest_snapshot(site_dir) == site_dir / SNAPSHOT_ID
    assert snapshot_view(site_dir / SNAPSHOT_ID) == snapshot_view(tiny_site.snapshot)
    assert verify_snapshot(site_dir / SNAPSHOT_ID) == []


@pytest.fixture(scope="module")
def earlier_reconstruction(tiny_site, tmp_path_factory):
    """A different, complete earlier output (daily step) for the kill to interrupt."""
    out = tmp_path_factory.mktemp("earlier") / "rec"
    assert run_main(*tiny_site.reconstruct_args(out, "--step", "1d")) == 0
    return out


def previous_reconstruction(earlier, out):
    shutil.copytree(earlier, out)
    return tree(out)


@pytest.mark.parametrize("point", ["reconstruct:after-spans", "reconstruct:before-publish",
                                   "reconstruct:after-publish"])
def test_reconstruct_killed_keeps_one_whole_set_and_a_rerun_equals_a_clean_run(tiny_site, earlier_reconstruction,
                                                                              tmp_path, point):
    out = tmp_path / "rec"
    previous = previous_reconstruction(earlier_reconstruction, out)
    killed = cli(*tiny_site.reconstruct_args(out), fault=point)
    assert killed.returncode == KILLED, killed.stderr
    expected_now = tree(tiny_site.reconstruction) if point.endswith("after-publish") else previous
    assert tree(out) == expected_now  # the old set or the new one, never a mix

    assert run_main(*tiny_site.reconstruct_args(out)) == 0
    assert tree(out) == tree(tiny_site.reconstruction)
    assert staging_leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def earlier_backfill(tiny_site, tmp_path_factory, promtool):
    """An earlier complete backfill with another cut-off, plus a stray block an old version left."""
    out = tmp_path_factory.mktemp("earlier") / "bf"
    assert run_main(*tiny_site.backfill_args(out, promtool, "--holdback", "240h")) == 0
    shutil.copytree(next((out / "blocks").iterdir()), out / "blocks" / "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    return out


def previous_backfill(earlier, out) -> dict:
    shutil.copytree(earlier, out)
    return tree(out)


@pytest.mark.parametrize("point", ["backfill:after-openmetrics", "backfill:promtool-running",
                                   "backfill:before-publish", "backfill:after-publish"])
def test_backfill_killed_leaves_no_orphans_and_a_rerun_lists_exactly_its_blocks(tiny_site, earlier_backfill,
                                                                               tmp_path, promtool, point):
    out = tmp_path / "bf"
    previous = previous_backfill(earlier_backfill, out)
    killed = cli(*tiny_site.backfill_args(out, promtool), fault=point)
    assert killed.returncode == KILLED, killed.stderr
    assert orphans_after(str(tmp_path)) == []
    if point.endswith("after-publish"):
        assert backfill_view(out) == backfill_view(tiny_site.backfill)
    else:
        assert tree(out) == previous

    assert run_main(*tiny_site.backfill_args(out, promtool)) == 0
    assert backfill_view(out) == backfill_view(tiny_site.backfill)  # also: blocks on disk == blocks listed
    assert staging_leftovers(tmp_path) == []


@pytest.mark.parametrize("signal_name, code", [("TERM", 143), ("INT", 130)])
def test_backfill_stopped_by_a_signal_kills_promtool_and_removes_its_staging(tiny_site, earlier_reconstruction,
                                                                            earlier_backfill, tmp_path, promtool,
                                                                            signal_name, code):
    # The daily reconstruction: the same two windows (two promtool runs, each signalling as it starts,
    # so a second signal may come while the first is handled) with 1/24 of the samples to render.
    out = tmp_path / "bf"
    previous = previous_backfill(earlier_backfill, out)
    stopped = cli(*tiny_site.backfill_args(out, promtool, timeline=earlier_reconstruction),
                  fault=f"backfill:promtool-running@{signal_name}")
    assert stopped.returncode == code, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] in ("terminated", "aborted")
    assert "Traceback" not in stopped.stderr
    assert promtool_processes(str(tmp_path)) == []  # gone before the command exited
    assert staging_leftovers(tmp_path) == []
    assert tree(out) == previous


def test_ctrl_c_in_process_stops_backfill_the_same_way_and_the_next_run_starts_promtool_again(
        tiny_site, earlier_reconstruction, earlier_backfill, tmp_path, promtool, monkeypatch):
    # The CLI run in this process, as run_main does: each promtool start sends this process SIGINT;
    # the first stops the run, a second is ignored, and the handlers and the stop end with the run.
    out = tmp_path / "bf"
    previous = previous_backfill(earlier_backfill, out)
    monkeypatch.setenv(ENVIRONMENT, "backfill:promtool-running@INT")
    assert run_main(*tiny_site.backfill_args(out, promtool, timeline=earlier_reconstruction)) == INTERRUPTED
    assert promtool_processes(str(tmp_path)) == []
    assert staging_leftovers(tmp_path) == []
    assert tree(out) == previous

    monkeypatch.delenv(ENVIRONMENT)
    assert run_main(*tiny_site.backfill_args(out, promtool)) == 0
    assert backfill_view(out) == backfill_view(tiny_site.backfill)


def test_a_planted_manifest_cannot_make_backfill_delete_outside_its_output(tiny_site, tmp_path, promtool):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "victim-dir").mkdir()
    out = tmp_path / "deep" / "bf"
    (out / "blocks").mkdir(parents=True)
    (out / "backfill.json").write_text(json.dumps({"files": [
        {"path": "../../victim.txt", "blocks": ["../../../victim-dir", str(tmp_path / "victim-dir")]},
        {"path": str(victim), "blocks": []}]}))
    assert run_main(*tiny_site.backfill_args(out, promtool)) == 0
    assert victim.read_text() == "keep me" and (tmp_path / "victim-dir").is_dir()
    assert backfill_view(out) == backfill_view(tiny_site.backfill)


def test_backfill_refuses_to_replace_a_directory_holding_other_files(tiny_site, tmp_path, promtool):
    out = tmp_path / "bf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = cli(*tiny_site.backfill_args(out, promtool))
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "notes.txt" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bf"] and (out / "notes.txt").read_text() == "mine"
