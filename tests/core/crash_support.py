"""Helpers for the crash-safety tests: a tiny site and its clean outputs, running the CLI with an
injected fault, reading output trees, finding orphan promtool processes, and small tmpfs disks."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.faults import ENVIRONMENT
from tests import support

SNAPSHOT_ID = "20260210T000000Z"
SNAPSHOT_TIME = "2026-02-10"
HISTORY_START = "2026-01-05"


@dataclass(frozen=True)
class TinySite:
    """A generated 3-host, 5-week site and the outputs of one clean run of every stage."""

    root: Path
    db_url: str
    snapshot: Path  # extract's clean snapshot
    reconstruction: Path  # reconstruct's clean output
    backfill: Path  # backfill's clean output (with blocks)

    def extract_args(self, out: Path) -> list[str]:
        return ["extract", "--db-url", self.db_url, "--out", str(out), "--snapshot-id", SNAPSHOT_ID, "--quiet"]

    def reconstruct_args(self, out: Path, *extra: str) -> list[str]:
        return ["reconstruct", str(self.snapshot), "--site", "tiny", "--out", str(out), "--from", HISTORY_START,
                "--snapshot-time", SNAPSHOT_TIME, "--quiet", "--config", str(self.root / "no-config.yaml"), *extra]

    def backfill_args(self, out: Path, promtool: str, *extra: str, timeline: Path | None = None) -> list[str]:
        """``timeline``: another reconstruction than the clean one (e.g. a cheaper daily one)."""
        return ["backfill", str(timeline or self.reconstruction), "--out", str(out), "--blocks", "--promtool", promtool,
                "--quiet", *extra]


def build_tiny_site(root: Path, promtool: str) -> TinySite:
    from exporter.sitegen import generate_site

    db_url = f"sqlite:///{root / 'db' / 'main.sqlite'}"
    generate_site(db_url, hosts=3, years=0.1, seed=3, start=_day(HISTORY_START))
    site = TinySite(root, db_url, root / "clean-data" / "default" / SNAPSHOT_ID, root / "clean-rec", root / "clean-bf")
    for args in (site.extract_args(root / "clean-data"), site.reconstruct_args(site.reconstruction),
                 site.backfill_args(site.backfill, promtool)):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
    return site


def cli(*args: str, fault: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess, with ``USAGE_EXPORTER_FAULT=fault`` if given."""
    env = {k: v for k, v in os.environ.items() if k != ENVIRONMENT}
    if fault:
        env[ENVIRONMENT] = fault
    return subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=180, env=env, cwd=cwd)


def run_main(*args: str) -> int:
    """The CLI in this process (faster than ``cli`` for runs that are not killed); its exit code."""
    from exporter.cli import main

    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def tree(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (hidden entries included)."""
    found = {}
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith(skip):
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def backfill_view(out: Path) -> dict:
    """A backfill output with block ids (random by design) taken out: files, manifest, block ranges."""
    manifest = json.loads((out / "backfill.json").read_text())
    listed = [ulid for entry in manifest["files"] for ulid in entry.pop("blocks")]
    on_disk = sorted(p.name for p in (out / "blocks").iterdir())
    assert on_disk == sorted(listed), f"blocks on disk {on_disk} != blocks in backfill.json {listed}"
    ranges = sorted(_block_range(out / "blocks" / ulid) for ulid in listed)
    return {"files": tree(out, skip=("blocks", "backfill.json")), "manifest": manifest, "block_ranges": ranges}


def _block_range(block: Path) -> tuple[int, int, int]:
    meta = json.loads((block / "meta.json").read_text())
    return meta["minTime"], meta["maxTime"], meta["stats"]["numSamples"]


def promtool_processes(marker: str) -> list[int]:
    """Pids of live promtool processes whose command line mentions ``marker`` (a test's tmp path)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"promtool" in command and marker.encode() in command and state != "Z":
            pids.append(int(proc.name))
    return pids


def orphans_after(marker: str, seconds: float = 10.0) -> list[int]:
    """The promtool processes still alive once ``seconds`` have passed (an empty list returns at once)."""
    deadline = time.monotonic() + seconds
    while (alive := promtool_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def staging_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in Path(parent).iterdir() if ".staging-" in p.name)


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str):
    """A tmpfs of ``size`` at ``mountpoint`` for disk-full tests (needs root; fails under CI=true if impossible)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True).returncode == 0
    support.require(mounted, "mounting a tmpfs (tests run as root)")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def disk_usage(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _day(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d")
