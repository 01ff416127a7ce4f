"""Fingerprint the pipeline's outputs for a fixed synthetic site, to prove a refactor changed no byte.

Generates three small synthetic sites (bare metal, KVM and CHI@Edge) with a fixed --start and seed
into SQLite, then runs extract -> reconstruct -> backfill (OpenMetrics files, no blocks) through the
command line, and prints one ``sha256  relative/path`` line per output file. The manifest is left
out (it records when the extract ran); every table file it lists is hashed.

    .venv/bin/python bench/golden_outputs.py [WORKDIR]   # WORKDIR defaults to a temporary directory

Compare two runs with ``diff``: equal lines mean byte-identical outputs. Give both runs the same
WORKDIR (audit.json records the snapshot's path); a run replaces the sites it finds there.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SITES = (  # name, kind, hosts, seed
    ("golden-bm", "baremetal", 16, 11),
    ("golden-kvm", "kvm", 6, 12),
    ("golden-edge", "edge", 20, 13),
)
START, YEARS, END = "2023-03-01", "1", "2024-03-01"  # END: when the simulated history stops
CLI = [sys.executable, "-c", "import sys; from exporter.cli import main; main(sys.argv[1:])"]


def usage_exporter(*args: str) -> None:
    subprocess.run([*CLI, *args], check=True, stdout=subprocess.DEVNULL)


def site_outputs(work: Path, name: str, kind: str, hosts: int, seed: int) -> Path:
    """Generate, extract, reconstruct and backfill one site under ``work/name``; returns that directory."""
    root = work / name
    shutil.rmtree(root, ignore_errors=True)  # snapshots are never overwritten
    root.mkdir(parents=True)
    url = f"sqlite:///{root / 'db' / 'main.sqlite'}"
    config = root / "no-config.yaml"
    if kind == "edge":  # an edge site runs no Nova: extract reads it through its site entry
        config = root / "sites.yaml"
        config.write_text(f"data_dir: {root / 'data'}\nsites:\n  {name}:\n    db_url: {url}\n    kind: edge\n"
                          f"    history_start: {START}\n")
    usage_exporter("generate-site", "--db-url", url, "--hosts", str(hosts), "--years", YEARS, "--seed", str(seed),
                   "--start", START, "--kind", kind, "--truth-dir", str(root / "truth"))
    where = ("--site", name) if kind == "edge" else ("--db-url", url)
    usage_exporter("extract", *where, "--out", str(root / "data"), "--snapshot-id", "snap", "--quiet",
                   "--config", str(config))
    snapshot = next((root / "data").glob("*/snap"))
    usage_exporter("reconstruct", str(snapshot), "--site", name, "--out", str(root / "timeline"), "--from", START,
                   "--snapshot-time", END,
                   "--config", str(config), "--quiet")
    usage_exporter("backfill", str(root / "timeline"), "--out", str(root / "backfill"), "--quiet",
                   "--config", str(config))
    return root


def fingerprints(root: Path) -> list[str]:
    """sha256 of every snapshot table file and every reconstruct/backfill output that must not change."""
    files = sorted((root / "data").glob("*/snap/*.parquet"))
    files += [root / "timeline" / name for name in ("spans.parquet", "rejected.parquet", "timeline.parquet",
                                                    "audit.json", "leadtime.parquet", "leadtime_timeline.parquet")]
    files += [path for name in ("device_spans.parquet", "device_timeline.parquet")  # edge sites only
              if (path := root / "timeline" / name).exists()]
    files += sorted((root / "timeline" / "families").glob("*.parquet"))  # booked ahead, lead times
    files += sorted((root / "backfill" / "openmetrics").glob("*"))
    return [f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(root.parent)}" for path in files]


def main() -> None:
    if sys.argv[1:2] in (["-h"], ["--help"]):
        raise SystemExit(__doc__)
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="golden-outputs-"))
    for site in SITES:
        for line in fingerprints(site_outputs(work, *site)):
            print(line)


if __name__ == "__main__":
    main()
