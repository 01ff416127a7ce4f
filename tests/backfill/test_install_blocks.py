"""``usage-exporter install-blocks``: exactly the manifest's blocks, never an overlap, never a path
outside the backfill, and a rerun after a kill finishes the job."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.core.crash_support import cli, run_main, tree

pytestmark = pytest.mark.prometheus

OLD_BLOCK = "01BX5ZZKBKACTAV9WEVGEMMVRZ"  # a block already in the data directory
STRAY_BLOCK = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # on disk in the backfill, not in its manifest


def fake_block(directory, ulid, min_ms, max_ms):
    (directory / ulid).mkdir(parents=True)
    (directory / ulid / "meta.json").write_text(json.dumps({"ulid": ulid, "minTime": min_ms, "maxTime": max_ms}))


def listed(backfill) -> list[str]:
    return sorted(u for f in json.loads((backfill / "backfill.json").read_text())["files"] for u in f["blocks"])


def ranges(backfill) -> list[tuple[int, int]]:
    return sorted((m["minTime"], m["maxTime"]) for m in
                  (json.loads((backfill / "blocks" / u / "meta.json").read_text()) for u in listed(backfill)))


@pytest.fixture
def backfill_dir(tiny_site, tmp_path):
    """The clean backfill plus a stray block its manifest does not list."""
    out = tmp_path / "bf"
    shutil.copytree(tiny_site.backfill, out)
    fake_block(out / "blocks", STRAY_BLOCK, 0, 1)
    return out


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "prometheus"
    (data / "wal").mkdir(parents=True)
    fake_block(data, OLD_BLOCK, 946_684_800_000, 946_771_200_000)  # 2000-01-01, long before the backfill
    return data


def blocks_in(data) -> list[str]:
    """Directories Prometheus would load: named by a block id (26 characters, no suffix)."""
    return sorted(p.name for p in data.iterdir() if p.name.startswith("01") and len(p.name) == 26)


def test_installs_exactly_the_listed_blocks_and_a_rerun_changes_nothing(backfill_dir, data_dir, capsys):
    assert run_main("install-blocks", str(backfill_dir), "--data-dir", str(data_dir)) == 0
    assert blocks_in(data_dir) == sorted([OLD_BLOCK, *listed(backfill_dir)])
    for ulid in listed(backfill_dir):
        assert tree(data_dir / ulid) == tree(backfill_dir / "blocks" / ulid)
    before = tree(data_dir)
    assert run_main("install-blocks", str(backfill_dir), "--data-dir", str(data_dir)) == 0
    assert "already installed" in capsys.readouterr().out and tree(data_dir) == before


def test_refuses_a_block_that_overlaps_one_already_there(backfill_dir, data_dir, capsys):
    first_min, first_max = ranges(backfill_dir)[0]
    fake_block(data_dir, "01CX5ZZKBKACTAV9WEVGEMMVRZ", first_max - 3_600_000, first_max + 3_600_000)
    before = tree(data_dir)
    assert run_main("install-blocks", str(backfill_dir), "--data-dir", str(data_dir)) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overlaps block 01CX5ZZKBKACTAV9WEVGEMMVRZ" in err, err
    assert tree(data_dir) == before


def test_refuses_a_manifest_naming_paths_and_deletes_nothing(backfill_dir, data_dir, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "meta.json").write_text('{"minTime": 0, "maxTime": 1}')
    for name in ("../../victim", str(victim)):
        (backfill_dir / "backfill.json").write_text(json.dumps({"files": [{"path": "x.om", "blocks": [name]}]}))
        assert run_main("install-blocks", str(backfill_dir), "--data-dir", str(data_dir)) != 0
        assert "is not a block id" in capsys.readouterr().err
    assert (victim / "meta.json").exists() and blocks_in(data_dir) == [OLD_BLOCK]


@pytest.mark.parametrize("point", ["install-blocks:after-copy", "install-blocks:after-first-block"])
def test_a_rerun_after_a_kill_finishes_the_install(backfill_dir, data_dir, point):
    killed = cli("install-blocks", str(backfill_dir), "--data-dir", str(data_dir), fault=point)
    assert killed.returncode == -9, killed.stderr
    # Prometheus never sees a partial block: only complete ones carry a block id as their name
    for ulid in blocks_in(data_dir):
        if ulid != OLD_BLOCK:
            assert tree(data_dir / ulid) == tree(backfill_dir / "blocks" / ulid)
    assert run_main("install-blocks", str(backfill_dir), "--data-dir", str(data_dir)) == 0
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([OLD_BLOCK, "wal", *listed(backfill_dir)])
