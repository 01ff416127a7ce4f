"""Cost growth: generate → extract → reconstruct → backfill for sites of growing size (issue #19).

Usage::

    nice .venv/bin/python bench/cost_growth.py --hosts 100 500 2000 5000 --years 10 \\
        --workdir /tmp/cost-growth --results bench/cost_growth.json --plot docs/cost-growth.png

Each stage runs as the real CLI command in its own child process; its wall time, CPU time
(user + sys) and peak RSS come from ``os.wait4`` of that child alone. Sites are SQLite files
(``generate-site``); each size's site, snapshot, outputs and backfill are deleted once measured,
so the disk holds one size at a time. Results are appended to RESULTS (JSON lines, one per size,
with the load average), so an interrupted run keeps what it measured; ``--plot-only`` redraws the
table and the log-log plot from RESULTS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("generate", "extract", "reconstruct", "backfill")
CLI = str(Path(sys.executable).with_name("usage-exporter"))


def run_stage(argv: list[str], log: Path) -> dict:
    """Run ``argv``; wall and CPU seconds and peak RSS (MB) of that child alone."""
    began = time.perf_counter()
    with log.open("ab") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage failed ({os.waitstatus_to_exitcode(status)}): {' '.join(argv)}; see {log}")
    return {"seconds": round(wall, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def _site_end(site: Path) -> str:
    """The simulated 'now' of a generated site (its truth.json)."""
    return json.loads((site / "truth" / "truth.json").read_text())["params"]["end"].replace(" ", "T")


def du_mb(path: Path) -> int:
    """Bytes under ``path`` in MB (files only)."""
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20)


def measure_size(hosts: int, years: float, workdir: Path, seed: int) -> dict:
    """All four stages on one freshly generated site; the site is deleted afterwards."""
    site = workdir / f"h{hosts}"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    log = site.parent / f"h{hosts}.log"
    db = f"sqlite:///{site}/main.sqlite"
    result: dict = {"hosts": hosts, "years": years, "seed": seed, "commit": _commit(),
                    "load_before": os.getloadavg()}
    steps = {
        "generate": [CLI, "generate-site", "--db-url", db, "--hosts", str(hosts), "--years", str(years),
                     "--seed", str(seed), "--truth-dir", str(site / "truth")],
        "extract": [CLI, "extract", "--db-url", db, "--site", "growth", "--out", str(site / "data"),
                    "--snapshot-id", "snap", "--quiet"],
        # the site's own end, not the extraction's clock: the timeline covers the simulated years
        "reconstruct": lambda: [CLI, "reconstruct", str(site / "data" / "growth" / "snap"), "--site", "growth",
                                "--snapshot-time", _site_end(site), "--out", str(site / "out"), "--quiet"],
        "backfill": [CLI, "backfill", str(site / "out"), "--out", str(site / "backfill"), "--blocks", "--quiet"],
    }
    try:
        for stage in STAGES:
            argv = steps[stage]
            result[stage] = run_stage(argv() if callable(argv) else argv, log)
            print(f"{hosts} hosts {stage}: {result[stage]}", file=sys.stderr, flush=True)
        result["sizes_mb"] = {name: du_mb(site / name) for name in ("data", "out", "backfill")}
        result["sqlite_mb"] = round(sum(f.stat().st_size for f in site.glob("*.sqlite")) / 2**20)
        result["rows"] = _rows(site)
    finally:
        result["load_after"] = os.getloadavg()
        shutil.rmtree(site, ignore_errors=True)
    return result


def _commit() -> str:
    """The measured code's commit (rows of one table may come from different runs)."""
    where = Path(__file__).resolve().parent
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True)
    return found.stdout.strip() or "?"


def _rows(site: Path) -> dict:
    """Snapshot rows, spans and timeline rows, samples written by the backfill."""
    import polars as pl

    snap = site / "data" / "growth" / "snap"
    snapshot_rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in snap.rglob("*.parquet"))
    out = {name: pl.scan_parquet(site / "out" / f"{name}.parquet").select(pl.len()).collect().item()
           for name in ("spans", "timeline")}
    manifest = json.loads((site / "backfill" / "backfill.json").read_text())
    return {"snapshot": snapshot_rows, **out, "samples": manifest.get("samples")}


def table(results: list[dict]) -> str:
    """A markdown table: per size and stage, wall / CPU seconds and peak RSS."""
    head = "| hosts | snapshot rows | timeline rows | " + " | ".join(
        f"{s} wall / CPU s, peak MB" for s in STAGES) + " | load (1 min) | commit |"
    lines = [head, "|" + "---|" * (5 + len(STAGES))]
    for r in results:
        cells = [f"{r[s]['seconds']:.1f} / {r[s]['cpu_seconds']:.1f}, {r[s]['peak_rss_mb']:,}" for s in STAGES]
        lines.append(f"| {r['hosts']:,} | {r['rows']['snapshot']:,} | {r['rows']['timeline']:,} | "
                     + " | ".join(cells) + f" | {r['load_before'][0]:.1f} → {r['load_after'][0]:.1f} | {r.get('commit', '?')} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Log-log: CPU seconds and peak RSS per stage against hosts, with a linear guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hosts = [r["hosts"] for r in results]
    fig, (cpu, mem) = plt.subplots(1, 2, figsize=(11, 4.5))
    for stage in STAGES:
        cpu.plot(hosts, [r[stage]["cpu_seconds"] for r in results], marker="o", label=stage)
        mem.plot(hosts, [r[stage]["peak_rss_mb"] / 1024 for r in results], marker="o", label=stage)
    for axis, key, unit in ((cpu, "cpu_seconds", "CPU seconds (user + sys)"), (mem, "peak_rss_mb", "peak RSS (GB)")):
        first = min(results, key=lambda r: r["hosts"])
        base = max(first[s][key] for s in STAGES) / (1024 if key == "peak_rss_mb" else 1)
        axis.plot(hosts, [base * h / first["hosts"] for h in hosts], "k:", label="linear in hosts")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("hosts (10 years of history)")
        axis.set_ylabel(unit)
        axis.grid(True, which="both", alpha=0.3)
    cpu.legend(fontsize=8)
    fig.suptitle("Cost growth per stage (bench/cost_growth.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[100, 500, 2000, 5000])
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cost-growth"))
    parser.add_argument("--results", type=Path, default=Path("bench/cost_growth.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/cost-growth.png"))
    parser.add_argument("--plot-only", action="store_true", help="Redraw table and plot from RESULTS.")
    args = parser.parse_args()
    if not args.plot_only:
        for hosts in args.hosts:
            result = measure_size(hosts, args.years, args.workdir, args.seed)
            with args.results.open("a") as sink:
                sink.write(json.dumps(result) + "\n")
    results = sorted((json.loads(line) for line in args.results.read_text().splitlines() if line.strip()),
                     key=lambda r: r["hosts"])
    print(table(results))
    if len(results) > 1:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
