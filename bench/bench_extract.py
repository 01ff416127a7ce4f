"""`extract` of a MariaDB site: the fast reader (connectorx) against the SQLAlchemy reader, side by side.

    .venv/bin/python bench/bench_extract.py --prefix bx500_ --generate   # 500 hosts x 10 years (~10 min), kept
    .venv/bin/python bench/bench_extract.py --prefix bx500_ --rounds 3   # reuse it
    .venv/bin/python bench/bench_extract.py --prefix bx500_ --drop       # remove it

Each round extracts the whole site twice, in alternating order (SQLAlchemy first in odd rounds),
each in a fresh process, and checks that both snapshots hold the same parquet hashes. Prints wall
seconds, the process's CPU seconds (the server's are not in it), peak RSS and rows per reader, the
medians and their ratios, and ``uptime`` before and after.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile

import click

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


def run(prefix: str, reader: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as out:
        done = subprocess.run([sys.executable, "-c", CHILD, prefix, reader, out], capture_output=True, text=True,
                              check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--prefix", default="bx500_", show_default=True, help="Physical database prefix on the server.")
@click.option("--generate", is_flag=True, help="Generate the site first (drops and re-creates its databases).")
@click.option("--hosts", type=int, default=500, show_default=True)
@click.option("--years", type=float, default=10.0, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True)
@click.option("--drop", is_flag=True, help="Drop the site's databases and exit.")
def main(prefix: str, generate: bool, hosts: int, years: float, seed: int, rounds: int, drop: bool) -> None:
    import sqlalchemy as sa

    from exporter.config import prefixed_databases

    if drop:
        engine = sa.create_engine(ROOT_URL)
        with engine.begin() as conn:
            for database in prefixed_databases(prefix).values():
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        return
    if generate:
        from exporter.sitegen import generate_site

        with tempfile.TemporaryDirectory() as truth:
            generate_site(ROOT_URL, hosts=hosts, years=years, seed=seed, databases=prefixed_databases(prefix),
                          truth_dir=truth)
    print("before:", uptime())
    results: dict[str, list[dict]] = {"sqlalchemy": [], "fast": []}
    for round_ in range(rounds):
        for reader in (("sqlalchemy", "fast") if round_ % 2 == 0 else ("fast", "sqlalchemy")):
            result = run(prefix, reader)
            results[reader].append(result)
            print(f"round {round_ + 1} {reader:10s} {result['seconds']:7.2f} s  {result['cpu']:6.2f} s CPU  "
                  f"{result['peak_rss_mb']:7.0f} MB  "
                  f"{result['rows']:,} rows  {result['fast_tables']} tables by connectorx", flush=True)
    print("after:", uptime())
    hashes = {json.dumps(r["hashes"], sort_keys=True) for rs in results.values() for r in rs}
    print("same parquet hashes for every run:", len(hashes) == 1)
    medians = {reader: statistics.median(r["seconds"] for r in rs) for reader, rs in results.items()}
    memory = {reader: statistics.median(r["peak_rss_mb"] for r in rs) for reader, rs in results.items()}
    cpu = {reader: statistics.median(r["cpu"] for r in rs) for reader, rs in results.items()}
    rows = results["fast"][0]["rows"]
    for reader in results:
        print(f"median {reader:10s} {medians[reader]:7.2f} s wall  {cpu[reader]:6.2f} s CPU (this process)  "
              f"{rows / medians[reader]:,.0f} rows/s  peak RSS {memory[reader]:.0f} MB")
    print(f"ratio sqlalchemy / fast: {medians['sqlalchemy'] / medians['fast']:.2f}x wall, "
          f"{cpu['sqlalchemy'] / cpu['fast']:.2f}x CPU")


if __name__ == "__main__":
    main()
