"""Reconstruct speed, two revisions side by side on one generated site (issue #19).

Usage::

    .venv/bin/python bench/reconstruct_speed.py --hosts 500 --years 10 --base BASE_REV --new NEW_REV --runs 5

Generates the site once (``usage-exporter generate-site``, SQLite) and extracts it once into
WORKDIR (reused by later runs with the same size and seed); checks out both revisions there
(``git archive``); then runs the reconstruction of each revision in its own child process,
interleaved (ABAB..., the first revision alternating per round), so both see the same machine
load. Per run: wall time of the library call (load snapshot -> spans -> timeline -> audit ->
write outputs), the child's CPU time and peak RSS (``os.wait4``), and the sha256 of every
output file. Prints medians, the ratio base/new, the load average, and whether every output
file of every run of both revisions is byte-identical (exit code 1 if not).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("usage-exporter"))

CHILD = """
import datetime as dt, json, sys, time
from pathlib import Path
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_to_directory
snapshot, start, end, out = sys.argv[1:5]
try:  # the process setting the revision's command line makes, where it makes one
    from exporter.engine.plans import prefer_in_memory_engine
except ImportError:
    pass
else:
    prefer_in_memory_engine()
began = time.perf_counter()
reconstruct_to_directory(Path(snapshot), ReconstructOptions(site="bench", start=dt.datetime.fromisoformat(start),
                         snapshot_time=dt.datetime.fromisoformat(end)), Path(out))
print(json.dumps({"wall_seconds": time.perf_counter() - began}))
"""


def prepare_site(workdir: Path, hosts: int, years: float, seed: int) -> tuple[Path, str, str]:
    """(snapshot dir, site start, site end), generating and extracting once per size and seed."""
    site = workdir / f"site-h{hosts}-y{years:g}-s{seed}"
    marker = site / "ready.json"
    if not marker.exists():
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir(parents=True)
        db = f"sqlite:///{site}/main.sqlite"
        print(f"generating and extracting {hosts} hosts x {years:g} years (minutes)", file=sys.stderr)
        subprocess.run([CLI, "generate-site", "--db-url", db, "--hosts", str(hosts), "--years", str(years),
                        "--seed", str(seed), "--truth-dir", str(site / "truth")], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([CLI, "extract", "--db-url", db, "--site", "bench", "--out", str(site / "data"),
                        "--snapshot-id", "snap", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        params = json.loads((site / "truth" / "truth.json").read_text())["params"]
        marker.write_text(json.dumps({"start": params["start"].replace(" ", "T"),
                                      "end": params["end"].replace(" ", "T")}))
    info = json.loads(marker.read_text())
    return site / "data" / "bench" / "snap", info["start"], info["end"]


def checkout(rev: str, workdir: Path) -> tuple[str, Path]:
    """(full commit hash, a directory with that revision's tree)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = workdir / f"rev-{sha[:12]}"
    if not (tree / "exporter").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return sha, tree


def run_once(tree: Path, snapshot: Path, start: str, end: str, out: Path) -> dict:
    """One reconstruction with ``tree``'s code in a child process; times, peak RSS, output hashes."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    log = out.with_suffix(".log")
    with log.open("w") as sink:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(snapshot), start, end, str(out)], cwd=tree,
                                 env=env, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak RSS
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"reconstruct failed with {tree}: see {log}")
    return {"wall_seconds": json.loads(log.read_text().strip().splitlines()[-1])["wall_seconds"],
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "hashes": {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
                       for f in sorted(out.rglob("*")) if f.is_file()}}  # families/ is a directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base", default="HEAD~1", help="Baseline revision (git rev).")
    parser.add_argument("--new", default="HEAD", help="Revision to compare (git rev).")
    parser.add_argument("--runs", type=int, default=5, help="Runs of each revision, interleaved.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/reconstruct-speed"))
    parser.add_argument("--json", type=Path, help="Also write every run's numbers here.")
    args = parser.parse_args()
    snapshot, start, end = prepare_site(args.workdir, args.hosts, args.years, args.seed)
    revs = {label: checkout(rev, args.workdir) for label, rev in (("base", args.base), ("new", args.new))}
    runs: dict[str, list[dict]] = {"base": [], "new": []}
    load_before = os.getloadavg()
    for round_ in range(args.runs):
        for label in (("base", "new") if round_ % 2 == 0 else ("new", "base")):
            result = run_once(revs[label][1], snapshot, start, end, args.workdir / f"out-{label}")
            runs[label].append(result)
            print(f"round {round_ + 1} {label:4} {result['wall_seconds']:7.2f} s wall {result['cpu_seconds']:7.2f} s CPU "
                  f"{result['peak_rss_mb']:7.0f} MB  load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    report = summarize(runs, revs, load_before, os.getloadavg())
    print(report["text"])
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                         **{k: v for k, v in report.items() if k != "text"}}, indent=1))
    sys.exit(0 if report["identical"] else 1)


def summarize(runs: dict[str, list[dict]], revs: dict, load_before, load_after) -> dict:
    """Medians per revision, ratio base/new, and whether all output hashes agree."""
    medians = {label: {key: statistics.median(r[key] for r in results)
                       for key in ("wall_seconds", "cpu_seconds", "peak_rss_mb")}
               for label, results in runs.items()}
    hashes = {json.dumps(r["hashes"], sort_keys=True) for results in runs.values() for r in results}
    lines = [f"load average {load_before[0]:.1f} / {load_before[1]:.1f} before, "
             f"{load_after[0]:.1f} / {load_after[1]:.1f} after (1 / 5 min)"]
    for label, (sha, _) in revs.items():
        m, walls = medians[label], ", ".join(f"{r['wall_seconds']:.2f}" for r in runs[label])
        lines.append(f"{label:4} {sha[:10]}: median {m['wall_seconds']:.2f} s wall ({walls}), "
                     f"{m['cpu_seconds']:.2f} s CPU, {m['peak_rss_mb']:.0f} MB peak RSS")
    ratio = {key: medians["base"][key] / medians["new"][key] for key in ("wall_seconds", "cpu_seconds")}
    memory = medians["new"]["peak_rss_mb"] / medians["base"]["peak_rss_mb"]
    lines.append(f"speed-up base/new: {ratio['wall_seconds']:.2f}x wall, {ratio['cpu_seconds']:.2f}x CPU; "
                 f"peak RSS new/base {memory:.2f}")
    identical = len(hashes) == 1
    files = sorted(json.loads(next(iter(hashes)))) if hashes else []
    lines.append(f"outputs ({', '.join(files)}): " + ("byte-identical in every run of both revisions" if identical
                 else f"DIFFER: {len(hashes)} distinct sets of hashes"))
    if not identical:  # e.g. a base from before new output files: is each revision deterministic?
        for label, results in runs.items():
            sets = [r["hashes"] for r in results]
            same = all(h == sets[0] for h in sets)
            lines.append(f"{label}: {'byte-identical in each of its runs' if same else 'its runs DIFFER'}")
        base, new = runs["base"][0]["hashes"], runs["new"][0]["hashes"]
        lines.append("files that differ between the revisions: " + ", ".join(
            sorted(name for name in set(base) | set(new) if base.get(name) != new.get(name))))
    return {"text": "\n".join(lines), "medians": medians, "ratio": ratio, "memory_ratio": memory,
            "identical": identical, "hashes": sorted(hashes)}


if __name__ == "__main__":
    main()
