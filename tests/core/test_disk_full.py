"""A full disk (a small tmpfs) in every stage: one clear line, a non-zero exit, nothing partial
left behind (the free space is back to what it was), and the previous output unchanged."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

from tests.core.crash_support import run_main, staging_leftovers, tmpfs, tree

pytestmark = pytest.mark.prometheus


def usage(path) -> int:
    """Bytes a tree occupies on disk (tmpfs counts whole pages)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*")) + 4096


def free_bytes(path) -> int:
    stats = os.statvfs(path)
    return stats.f_bfree * stats.f_frsize


def fails_cleanly(capsys, disk, args) -> None:
    """Run ``args`` on the full ``disk``: exit != 0, one 'no space left' line, the disk as it was."""
    before, contents = free_bytes(disk), tree(disk)
    capsys.readouterr()
    assert run_main(*args) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: no space left on the device") and err.count("\n") == 1, err
    assert free_bytes(disk) == before and tree(disk) == contents
    assert staging_leftovers(disk) == []


@pytest.fixture
def disk(tmp_path):
    """Factory: a mounted tmpfs of ``size`` bytes at tmp_path/disk (unmounted after the test)."""
    with contextlib.ExitStack() as stack:
        yield lambda size: stack.enter_context(tmpfs(tmp_path / "disk", str(size)))


def test_extract_on_a_full_disk(tiny_site, disk, capsys):
    mount = disk(int(usage(tiny_site.snapshot) * 1.6))
    first = tiny_site.extract_args(mount)
    assert run_main(*first) == 0  # fits once
    again = [("S2" if a == first[first.index("--snapshot-id") + 1] else a) for a in first]
    fails_cleanly(capsys, mount, again)  # not twice: the first snapshot stays, no S2, no temp dir


def test_reconstruct_on_a_full_disk(tiny_site, disk, capsys):
    mount = disk(int(usage(tiny_site.reconstruction) * 1.5))
    assert run_main(*tiny_site.reconstruct_args(mount / "rec")) == 0
    fails_cleanly(capsys, mount, tiny_site.reconstruct_args(mount / "rec"))  # a second set does not fit beside it
    assert tree(mount / "rec") == tree(tiny_site.reconstruction)


def test_backfill_on_a_full_disk(tiny_site, disk, promtool, capsys):
    mount = disk(int(usage(tiny_site.backfill) * 1.5))
    shutil.copytree(tiny_site.backfill, mount / "bf")
    fails_cleanly(capsys, mount, tiny_site.backfill_args(mount / "bf", promtool))


def test_install_blocks_on_a_full_disk(tiny_site, disk, capsys):
    mount = disk(64 * 1024)  # smaller than one block
    before = free_bytes(mount)
    assert run_main("install-blocks", str(tiny_site.backfill), "--data-dir", str(mount)) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: no space left on the device") and "0 of 2 block(s) installed" in err, err
    assert err.count("\n") == 1 and free_bytes(mount) == before and list(mount.iterdir()) == []
