"""Cost growth: generate → extract → reconstruct → backfill for sites of growing size (issue #19).

Usage::

    nice .venv/bin/python bench/cost_growth.py --hosts 100 500 2000 5000 --years 10 \\
        --workdir /tmp/cost-growth --results bench/cost_growth.json --plot docs/cost-growth.png

Each stage runs as the real CLI command in its own child process; its wall time, CPU time
(user + sys) and peak RSS come from ``os.wait4`` of that child alone. Sites are SQLite files
(``generate-site``); each size's site, snapshot, outputs and backfill are deleted once measured,
so the disk holds one size at a time. Results are appended to RESULTS (JSON lines, one per size,
with the load average and the commit measured), so an interrupted run keeps what it measured;
``--plot-only`` redraws the tables (time and memory per stage; CPU and memory per row of what each
stage works on) and the log-log plot from RESULTS. A line written by hand for a run whose results
file is lost carries a ``source`` saying so and only the figures written down: the tables show "—"
for the others and the plot leaves them out, marking that size as transcribed.
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
    """A markdown table: per size and stage, wall / CPU seconds and peak RSS; "—" where a result
    lacks a figure (a transcribed run keeps only what was written down), and where each size was
    measured (commit, and the source when it is not this script's own results line)."""
    head = "| hosts | snapshot rows | timeline rows | " + " | ".join(
        f"{s} wall / CPU s, peak MB" for s in STAGES) + " | load (1 min) | commit |"
    lines = [head, "|" + "---|" * (5 + len(STAGES))]
    for r in results:
        cells = [_stage_cell(r.get(s)) for s in STAGES]
        load = f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f}" if "load_before" in r and "load_after" in r else "—"
        commit = r.get("commit", "?") + (" (transcribed)" if "source" in r else "")
        lines.append(f"| {r['hosts']:,} | {_count(r, 'snapshot')} | {_count(r, 'timeline')} | " + " | ".join(cells)
                     + f" | {load} | {commit} |")
    return "\n".join(lines)


def _stage_cell(stage: dict | None) -> str:
    if not stage:
        return "—"
    wall, cpu, peak = (stage.get(k) for k in ("seconds", "cpu_seconds", "peak_rss_mb"))
    return (f"{'—' if wall is None else f'{wall:.1f}'} / {'—' if cpu is None else f'{cpu:.1f}'}, "
            f"{'—' if peak is None else f'{peak:,}'}")


def _count(result: dict, name: str) -> str:
    value = result.get("rows", {}).get(name)
    return "—" if value is None else f"{value:,}"


# What each stage's work is counted in: extract copies snapshot rows; reconstruct makes spans from
# them and holds frames of them (its hourly timeline is sized by node types × hours, not hosts);
# backfill writes samples.
PER_ROW = (("extract", "snapshot"), ("reconstruct", "spans"), ("reconstruct", "snapshot"), ("backfill", "samples"))


def per_row_table(results: list[dict]) -> str:
    """CPU microseconds and peak RSS bytes per row of what each stage works on, per size: a stage
    that grows faster than its rows shows as a rising column."""
    head = "| hosts | " + " | ".join(f"{stage} per {rows} row: CPU µs, peak bytes" for stage, rows in PER_ROW) + " | commit |"
    lines = [head, "|" + "---|" * (2 + len(PER_ROW))]
    for r in results:
        cells = []
        for stage, rows in PER_ROW:
            count, figures = r.get("rows", {}).get(rows), r.get(stage) or {}
            cpu, peak = figures.get("cpu_seconds"), figures.get("peak_rss_mb")
            cells.append("—" if not count or cpu is None else
                         f"{cpu / count * 1e6:.2f}, {'—' if peak is None else f'{peak * 2**20 / count:,.0f}'}")
        lines.append(f"| {r['hosts']:,} | " + " | ".join(cells) + f" | {r.get('commit', '?')} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Log-log: CPU seconds and peak RSS per stage against hosts, with a linear guide. Each size's
    tick names the commit it was measured on (a transcribed result is starred, its points hollow);
    a figure a result lacks is left out of its line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hosts = [r["hosts"] for r in results]
    fig, (cpu, mem) = plt.subplots(1, 2, figsize=(11, 4.8))
    for axis, key, unit, scale in ((cpu, "cpu_seconds", "CPU seconds (user + sys)", 1),
                                   (mem, "peak_rss_mb", "peak RSS (GB)", 1024)):
        for stage in STAGES:
            points = [(r["hosts"], r[stage][key] / scale, "source" in r) for r in results
                      if (r.get(stage) or {}).get(key) is not None]
            measured = [(x, y) for x, y, transcribed in points if not transcribed]
            line, = axis.plot(*zip(*measured), marker="o", label=stage) if measured else axis.plot([], [], label=stage)
            for k, (x, y, transcribed) in enumerate(points):
                if transcribed:  # another run: a hollow point, reached by a dashed line
                    axis.plot([x], [y], "o", markerfacecolor="white", markeredgecolor=line.get_color())
                    if k:
                        axis.plot([points[k - 1][0], x], [points[k - 1][1], y], "--", color=line.get_color())
        first = min(results, key=lambda r: r["hosts"])
        # through the smallest size's lowest stage, so the guide runs among the lines it is compared with
        base = min((first.get(s) or {}).get(key) or float("inf") for s in STAGES) / scale
        axis.plot(hosts, [base * h / first["hosts"] for h in hosts], "k:", label="linear in hosts")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(hosts, [f"{r['hosts']:,}\n{r.get('commit', '?')}{'*' if 'source' in r else ''}"
                                for r in results], fontsize=8)
        axis.minorticks_off()
        axis.set_xlabel("hosts (10 years of history) and the commit measured")
        axis.set_ylabel(unit)
        axis.grid(True, which="both", alpha=0.3)
    cpu.legend(fontsize=8)
    transcribed = any("source" in r for r in results)
    fig.suptitle("Cost growth per stage (bench/cost_growth.py)"
                 + ("\n* transcribed from an earlier run (hollow points, dashed lines), not measured with the others" if transcribed
                    else ""), fontsize=10)
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
    print()
    print(per_row_table(results))
    if len(results) > 1:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
