"""`extract` of a MariaDB site: the fast reader (connectorx) against the SQLAlchemy reader, side by side.

    .venv/bin/python bench/bench_extract.py --prefix bx500_ --rounds 3   # generates the site if absent, kept
    .venv/bin/python bench/bench_extract.py --prefix bx500_ --generate   # re-generate it first (~10 min)
    .venv/bin/python bench/bench_extract.py --prefix bx500_ --drop       # remove it
    .venv/bin/python bench/bench_extract.py --baseline-tree /tmp/old-checkout   # also an older fast reader

The site (500 hosts x 10 years, seed 7) is generated into MariaDB when its databases are absent.
Each round extracts the whole site twice, in alternating order (SQLAlchemy first in odd rounds),
each in a fresh process, and checks that both snapshots hold the same parquet hashes (with
``--baseline-tree``, the fast reader of another checkout of this repository runs as a third reader,
``fast@baseline``, in the same rotation: a before/after of the fast reader itself). Prints wall
seconds, the process's CPU seconds, the MariaDB server's CPU seconds during the run (from
``/proc/<mariadbd>/stat``, when the server runs on this host), peak RSS and rows per reader, the
medians and their ratios, and ``uptime`` before and after.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import click

HERE = Path(__file__).resolve().parents[1]
ROOT_URL = "mysql+pymysql://root@127.0.0.1:3306/"
CHILD = """
import json, os, resource, sys, time
from pathlib import Path
from exporter.config import SiteConfig, prefixed_databases
from exporter.extract.copy import extract_snapshot
prefix, fast, out = sys.argv[1], sys.argv[2] == "fast", sys.argv[3]
site = SiteConfig(name="bench", display_name="bench", db_url=%r, databases=prefixed_databases(prefix))
began, cpu = time.perf_counter(), os.times()
result = extract_snapshot(site, Path(out), snapshot_id="s", fast_reads=fast)
tables = result.manifest["tables"]
done = os.times()
print(json.dumps({"seconds": time.perf_counter() - began, "cpu": done.user + done.system - cpu.user - cpu.system,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows": sum(t["rows"] or 0 for t in tables.values()),
                  "fast_tables": sum(t["reader"] == "connectorx" for t in tables.values()),
                  "hashes": {name: t["sha256"] for name, t in tables.items()}}))
""" % ROOT_URL


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def server_cpu() -> float | None:
    """CPU seconds (user + system) of the local mariadbd/mysqld so far, None when not on this host."""
    found = subprocess.run(["pgrep", "-x", "mariadbd|mysqld"], capture_output=True, text=True).stdout.split()
    if not found:
        return None
    try:
        fields = open(f"/proc/{found[0]}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(prefix: str, reader: str, tree: Path) -> dict:
    """One extract in a fresh process that imports ``exporter`` from ``tree``."""
    before = server_cpu()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as out:
        done = subprocess.run([sys.executable, "-c", CHILD, prefix, reader, out], capture_output=True, text=True,
                              check=True, cwd=tree)
    after = server_cpu()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu"] = after - before if before is not None and after is not None else None
    return result


def site_present(engine, prefix: str) -> bool:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s "
                                    "AND table_name = 'instance_actions_events'", (f"{prefix}nova",)).scalar() == 1


@click.command()
@click.option("--prefix", default="bx500_", show_default=True, help="Physical database prefix on the server.")
@click.option("--generate", is_flag=True, help="Generate the site first (drops and re-creates its databases).")
@click.option("--hosts", type=int, default=500, show_default=True)
@click.option("--years", type=float, default=10.0, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True)
@click.option("--drop", is_flag=True, help="Drop the site's databases and exit.")
@click.option("--baseline-tree", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another checkout whose fast reader runs as a third reader (fast@baseline).")
def main(prefix: str, generate: bool, hosts: int, years: float, seed: int, rounds: int, drop: bool,
         baseline_tree: Path | None) -> None:
    import sqlalchemy as sa

    from exporter.config import prefixed_databases

    if drop:
        engine = sa.create_engine(ROOT_URL)
        with engine.begin() as conn:
            for database in prefixed_databases(prefix).values():
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        return
    if generate or not site_present(sa.create_engine(ROOT_URL), prefix):
        print(f"generating the {hosts} x {years:g} site into {prefix}* (seed {seed}) ...", flush=True)
        from exporter.sitegen import generate_site

        with tempfile.TemporaryDirectory() as truth:
            generate_site(ROOT_URL, hosts=hosts, years=years, seed=seed, databases=prefixed_databases(prefix),
                          truth_dir=truth)
    print("before:", uptime())
    trees = {"sqlalchemy": HERE, "fast": HERE, **({"fast@baseline": baseline_tree} if baseline_tree else {})}
    results: dict[str, list[dict]] = {reader: [] for reader in trees}
    for round_ in range(rounds):
        readers = list(trees)[round_ % len(trees):] + list(trees)[:round_ % len(trees)]  # rotate the order
        for reader in readers:
            result = run(prefix, reader.split("@")[0], trees[reader])
            results[reader].append(result)
            print(f"round {round_ + 1} {reader:13s} {result['seconds']:7.2f} s  {result['cpu']:6.2f} s CPU  "
                  f"{_seconds(result['server_cpu'])} server CPU  {result['peak_rss_mb']:7.0f} MB  "
                  f"{result['rows']:,} rows  {result['fast_tables']} tables by connectorx", flush=True)
    print("after:", uptime())
    hashes = {json.dumps(r["hashes"], sort_keys=True) for rs in results.values() for r in rs}
    print("same parquet hashes for every run:", len(hashes) == 1)
    medians = {reader: statistics.median(r["seconds"] for r in rs) for reader, rs in results.items()}
    memory = {reader: statistics.median(r["peak_rss_mb"] for r in rs) for reader, rs in results.items()}
    cpu = {reader: statistics.median(r["cpu"] for r in rs) for reader, rs in results.items()}
    server = {reader: statistics.median(r["server_cpu"] for r in rs) if all(r["server_cpu"] is not None for r in rs)
              else None for reader, rs in results.items()}
    rows = results["fast"][0]["rows"]
    for reader in results:
        print(f"median {reader:13s} {medians[reader]:7.2f} s wall  {cpu[reader]:6.2f} s CPU (this process)  "
              f"{_seconds(server[reader])} CPU (server)  {rows / medians[reader]:,.0f} rows/s  "
              f"peak RSS {memory[reader]:.0f} MB")
    for reader in [r for r in results if r != "fast"]:
        print(f"ratio {reader} / fast: {medians[reader] / medians['fast']:.2f}x wall, "
              f"{cpu[reader] / cpu['fast']:.2f}x CPU (this process)"
              + (f", {server[reader] / server['fast']:.2f}x CPU (server)" if server[reader] and server["fast"] else ""))


def _seconds(value: float | None) -> str:
    return f"{value:6.2f} s" if value is not None else "     ? s"


if __name__ == "__main__":
    main()
