"""reconstruct and run check a snapshot before using it: complete, unaltered (manifest sha256),
or, for a directory without a manifest, used with a warning that it cannot be checked."""

from __future__ import annotations

import json
import shutil
import sqlite3

import polars as pl
import pytest

from tests.core.crash_support import SNAPSHOT_ID, run_main

pytestmark = pytest.mark.prometheus  # the tiny site fixture makes blocks too


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_the_snapshot_of_a_failed_extract_is_refused_not_silently_used(tiny_site, tmp_path, capsys):
    db = tmp_path / "db"
    shutil.copytree(tiny_site.root / "db", db)
    with sqlite3.connect(db / "blazar.sqlite") as conn:
        conn.execute("DROP TABLE leases")
    assert run_main("extract", "--db-url", f"sqlite:///{db / 'main.sqlite'}", "--out", str(tmp_path / "data"),
                    "--snapshot-id", SNAPSHOT_ID, "--quiet") == 1
    snapshot = tmp_path / "data" / "default" / SNAPSHOT_ID
    capsys.readouterr()

    args = [str(snapshot) if a == str(tiny_site.snapshot) else a for a in tiny_site.reconstruct_args(tmp_path / "out")]
    assert run_main(*args) != 0
    assert "required table blazar.leases was not copied (missing" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()

    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n  default:\n    db_url: sqlite:///{db / 'main.sqlite'}\n")
    assert run_main("reconstruct", "--site", "default", "--config", str(config), "--out", str(tmp_path / "o2"),
                    "--quiet") != 0
    assert "no complete snapshot under" in one_line_error(capsys)  # an incomplete snapshot is never "newest"

    assert run_main(*args, "--allow-incomplete") == 0
    warnings = json.loads((tmp_path / "out" / "audit.json").read_text())["warnings"]
    assert "required table blazar.leases was not copied (missing" in warnings[0]


def altered_snapshot(tiny_site, tmp_path):
    snapshot = tmp_path / "snap"
    shutil.copytree(tiny_site.snapshot, snapshot)
    instances = pl.read_parquet(snapshot / "nova.instances.parquet")
    instances.head(instances.height // 2).write_parquet(snapshot / "nova.instances.parquet")
    return snapshot


def test_an_altered_table_file_is_refused_by_reconstruct_and_run(tiny_site, tmp_path, capsys):
    snapshot = altered_snapshot(tiny_site, tmp_path)
    args = [str(snapshot) if a == str(tiny_site.snapshot) else a for a in tiny_site.reconstruct_args(tmp_path / "o")]
    assert run_main(*args) != 0
    assert "nova.instances.parquet differs from the sha256 in the manifest" in one_line_error(capsys)

    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n  tiny:\n    db_url: {tiny_site.db_url}\n"
                      "    history_start: 2026-01-05\n")
    assert run_main("run", "--site", "tiny", "--config", str(config), "--snapshot", str(snapshot),
                    "--out", str(tmp_path / "run"), "--no-blocks", "--quiet") != 0
    assert "differs from the sha256" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()

    assert run_main(*args, "--allow-incomplete") == 0
    assert "differs from the sha256" in capsys.readouterr().out


def test_a_dump_without_manifest_is_used_with_a_warning(tiny_site, tmp_path, capsys):
    dump = tmp_path / "dump"
    shutil.copytree(tiny_site.snapshot, dump)
    (dump / "manifest.json").unlink()
    args = [str(dump) if a == str(tiny_site.snapshot) else a for a in tiny_site.reconstruct_args(tmp_path / "o")]
    assert run_main(*args) == 0
    assert "integrity cannot be checked" in capsys.readouterr().out
