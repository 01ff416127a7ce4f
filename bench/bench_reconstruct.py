"""Benchmark: reconstruct a 500-host × 10-year generated site at 1h step (wall time, peak RSS).

Usage::

    .venv/bin/python bench/bench_reconstruct.py [--workdir /tmp/bench-site] [--hosts 500] [--years 10]

The site is generated and extracted once into WORKDIR (minutes) and reused by later runs; only
the reconstruction (load snapshot -> spans -> timeline -> audit -> write outputs) is timed, in a
fresh child process so its peak RSS is the reconstruction's alone. Target: < 10 s, < 2 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def prepare(workdir: Path, hosts: int, years: float) -> tuple[Path, dt.datetime, dt.datetime]:
    """The snapshot directory, site start and snapshot time, generating and extracting once."""
    from exporter.config import SiteConfig
    from exporter.extract.copy import extract_snapshot
    from exporter.sitegen import generate_site

    marker = workdir / "bench-site.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        return Path(info["snapshot"]), dt.datetime.fromisoformat(info["start"]), dt.datetime.fromisoformat(info["end"])
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    site = generate_site(f"sqlite:///{workdir}/site.sqlite", hosts=hosts, years=years, seed=7,
                         truth_dir=workdir / "truth")
    print(f"generated {hosts} hosts x {years} years in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    config = SiteConfig(name="bench", display_name="bench", db_url=site.url, databases=site.databases)
    snapshot = extract_snapshot(config, workdir / "snapshots", snapshot_id="bench").snapshot_dir
    marker.write_text(json.dumps({"snapshot": str(snapshot), "start": site.start.isoformat(),
                                  "end": site.end.isoformat()}))
    return snapshot, site.start, site.end


class StageClock:
    """A silent progress reporter that records each stage's wall time and the peak RSS after it."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None):
        from exporter.progress import StageBar

        began, cpu = time.perf_counter(), _cpu_seconds()
        yield StageBar()
        self.stages[name] = {"seconds": round(time.perf_counter() - began, 2),
                             "cpu_seconds": round(_cpu_seconds() - cpu, 2),
                             "peak_rss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                             "rss_mb_after": _current_rss_mb()}


def _cpu_seconds() -> float:
    """CPU time (user + sys) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _current_rss_mb() -> int:
    """Resident set size now (Linux /proc), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def measure(snapshot: Path, start: dt.datetime, end: dt.datetime, out: Path) -> dict:
    """Run in this process: reconstruct + write; wall and CPU seconds, peak RSS, per-stage times, sizes."""
    import polars as pl

    from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_to_directory

    clock = StageClock()
    began = time.perf_counter()
    reconstruct_to_directory(snapshot, ReconstructOptions(site="bench", start=start, snapshot_time=end), out,
                             progress=clock)
    wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = {name: pl.scan_parquet(out / f"{name}.parquet").select(pl.len()).collect().item()
            for name in ("spans", "rejected", "timeline")}
    return {"wall_seconds": round(wall, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "stages": clock.stages, **rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-site"))
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--child", nargs=3, metavar=("SNAPSHOT", "START", "END"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        snapshot, start, end = args.child
        result = measure(Path(snapshot), dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end),
                         args.workdir / "reconstruction")
        print(json.dumps(result))
        return
    snapshot, start, end = prepare(args.workdir, args.hosts, args.years)
    child = subprocess.run([sys.executable, __file__, "--workdir", str(args.workdir), "--child", str(snapshot),
                            start.isoformat(), end.isoformat()], check=True, capture_output=True, text=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"reconstruct {args.hosts} hosts x {args.years:g} years @1h: {result['wall_seconds']} s wall, "
          f"{result['cpu_seconds']} s CPU (user+sys, incl. snapshot load), "
          f"{result['peak_rss_mb']} MB peak RSS; {result['spans']:,} spans, {result['rejected']:,} rejected, "
          f"{result['timeline']:,} timeline rows")
    for name, stage in result["stages"].items():
        print(f"  {name:<14} {stage['seconds']:>7.2f} s wall {stage['cpu_seconds']:>6.2f} s CPU   RSS after {stage['rss_mb_after']:>6} MB, "
              f"peak so far {stage['peak_rss_mb_after']:>6} MB")


if __name__ == "__main__":
    main()
