"""`extract` of a MariaDB site: the fast reader (connectorx) against the SQLAlchemy reader, side by side.

    .venv/bin/python bench/bench_extract.py --prefix bx500_ --rounds 3   # generates the site if absent, kept
    .venv/bin/python bench/bench_extract.py --prefix bx500_ --generate   # re-generate it first (~10 min)
    .venv/bin/python bench/bench_extract.py --prefix bx500_ --drop       # remove it
    .venv/bin/python bench/bench_extract.py --baseline-tree /tmp/old-checkout   # also an older fast reader
    .venv/bin/python bench/bench_extract.py --base HEAD~1   # also the fast reader of a commit (git archive)

The site (500 hosts x 10 years, seed 7) is generated into MariaDB when its databases are absent.
Each round extracts the whole site twice, in alternating order (SQLAlchemy first in odd rounds),
each in a fresh process, and checks that both snapshots hold the same parquet hashes (with
``--baseline-tree``, the fast reader of another checkout of this repository runs as a third reader,
``fast@baseline``, in the same rotation: a before/after of the fast reader itself; ``--base COMMIT``
does the same with a ``git archive`` of that commit, ``fast@COMMIT``). Prints wall
seconds, the process's CPU seconds, the MariaDB server's CPU seconds during the run (from
``/proc/<mariadbd>/stat``, when the server runs on this host), peak RSS and rows per reader, the
medians and their ratios, and ``uptime`` before and after. The server is shared, so its process CPU
also holds other clients' queries and background work; the readers connect as a bench user of
their own (``BENCH_USER``, created with SELECT on the site and dropped at the end) and the CPU of the
server threads while they serve that user's connections (found by polling
``information_schema.processlist`` for their ``TID`` every 5 ms) is printed as "server CPU, our
connections"; threads the server hands on to other clients are not counted after that.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
from reconstruct_speed import checkout  # bench/ is on the path when this script runs

HERE = Path(__file__).resolve().parents[1]
ROOT_URL = "mysql+pymysql://root@127.0.0.1:3306/"
BENCH_USER = "bxbench"
BENCH_URL = f"mysql+pymysql://{BENCH_USER}@127.0.0.1:3306/"
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
""" % BENCH_URL


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def server_pid() -> str | None:
    found = subprocess.run(["pgrep", "-x", "mariadbd|mysqld"], capture_output=True, text=True).stdout.split()
    return found[0] if found else None


def _cpu_seconds(stat_path: str) -> float | None:
    try:
        fields = open(stat_path).read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu() -> float | None:
    """CPU seconds (user + system) of the local mariadbd/mysqld so far, None when not on this host."""
    pid = server_pid()
    return _cpu_seconds(f"/proc/{pid}/stat") if pid else None


def thread_cpu() -> dict[int, float]:
    """CPU seconds of every thread of the local server so far (empty when not on this host)."""
    pid = server_pid()
    if not pid:
        return {}
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        value = _cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
        if value is not None:
            seconds[int(tid)] = value
    return seconds


class ServingThreads:
    """The server CPU spent serving ``user``'s connections while a block runs: every 5 ms the
    server threads (OS ids) serving that user are read from MariaDB's processlist (one thread per
    connection) and the CPU each gained since the previous poll is added to ``cpu[tid]``; only
    while it serves this user (the server hands idle threads on to other clients). ``kinds[tid]``:
    what ``kind`` made of the statements seen on that thread."""

    def __init__(self, engine, user: str = BENCH_USER, kind=lambda statement: "") -> None:
        self.engine, self.user, self.kind, self._stop = engine, user, kind, threading.Event()
        self.cpu: dict[int, float] = {}
        self.kinds: dict[int, set[str]] = {}
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def seconds(self) -> float:
        return sum(self.cpu.values())

    def _poll(self) -> None:
        previous = thread_cpu()
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                rows = conn.exec_driver_sql("SELECT TID, INFO FROM information_schema.processlist WHERE USER = %s",
                                            (self.user,)).all()
                now = thread_cpu()
                for tid, statement in rows:
                    self.kinds.setdefault(tid, set()).add(self.kind(statement or ""))
                    self.cpu[tid] = self.cpu.get(tid, 0.0) + now.get(tid, 0.0) - previous.get(tid, now.get(tid, 0.0))
                previous = now
                time.sleep(0.005)

    def __enter__(self) -> "ServingThreads":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(prefix: str, reader: str, tree: Path, engine) -> dict:
    """One extract in a fresh process that imports ``exporter`` from ``tree``."""
    before = server_cpu()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as out, ServingThreads(engine) as serving:
        done = subprocess.run([sys.executable, "-c", CHILD, prefix, reader, out], capture_output=True, text=True,
                              cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"the {reader} extract failed:\n{done.stderr}")
    after = server_cpu()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu"] = after - before if before is not None and after is not None else None
    result["server_cpu_ours"] = serving.seconds if before is not None else None
    return result


def bench_user(engine, prefix: str, *, create: bool, user: str = BENCH_USER) -> None:
    """Create (or drop) ``user`` with SELECT on the site's databases only."""
    from exporter.config import prefixed_databases

    with engine.begin() as conn:
        for host in ("127.0.0.1", "localhost"):
            account = f"'{user}'@'{host}'"
            conn.exec_driver_sql(f"DROP USER IF EXISTS {account}")
            if create:
                conn.exec_driver_sql(f"CREATE USER {account}")
                for database in prefixed_databases(prefix).values():
                    conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO {account}")


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
@click.option("--base", "base_commit", help="A commit of this repository whose fast reader runs as a third reader "
                                            "(fast@<commit>, a git archive of it), e.g. HEAD~3.")
@click.option("--without-sqlalchemy", is_flag=True, help="Only the fast readers (a quicker before/after).")
def main(prefix: str, generate: bool, hosts: int, years: float, seed: int, rounds: int, drop: bool,
         baseline_tree: Path | None, base_commit: str | None, without_sqlalchemy: bool) -> None:
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
    with tempfile.TemporaryDirectory(prefix="bench-extract-base-") as archive:
        trees = {**({} if without_sqlalchemy else {"sqlalchemy": HERE}), "fast": HERE,
                 **({"fast@baseline": baseline_tree} if baseline_tree else {})}
        if base_commit:
            sha, trees[f"fast@{base_commit}"] = checkout(base_commit, Path(archive))
            print(f"base: {base_commit} = {sha[:10]}, its tree in {archive}")
        _compare(prefix, rounds, trees)


def _compare(prefix: str, rounds: int, trees: dict[str, Path]) -> None:
    """``rounds`` rounds of one extract per reader, in a rotating order; medians and ratios."""
    import sqlalchemy as sa

    print("before:", uptime())
    results: dict[str, list[dict]] = {reader: [] for reader in trees}
    root = sa.create_engine(ROOT_URL)
    bench_user(root, prefix, create=True)
    try:
        for round_ in range(rounds):
            readers = list(trees)[round_ % len(trees):] + list(trees)[:round_ % len(trees)]  # rotate the order
            for reader in readers:
                result = run(prefix, reader.split("@")[0], trees[reader], root)
                results[reader].append(result)
                print(f"round {round_ + 1} {reader:13s} {result['seconds']:7.2f} s  {result['cpu']:6.2f} s CPU  "
                      f"{_seconds(result['server_cpu'])} server CPU ({_seconds(result['server_cpu_ours'])} our "
                      f"connections)  {result['peak_rss_mb']:7.0f} MB  {result['rows']:,} rows  "
                      f"{result['fast_tables']} tables by connectorx", flush=True)
    finally:
        bench_user(root, prefix, create=False)
    print("after:", uptime())
    hashes = {json.dumps(r["hashes"], sort_keys=True) for rs in results.values() for r in rs}
    print("same parquet hashes for every run:", len(hashes) == 1)
    medians = {reader: statistics.median(r["seconds"] for r in rs) for reader, rs in results.items()}
    memory = {reader: statistics.median(r["peak_rss_mb"] for r in rs) for reader, rs in results.items()}
    cpu = {reader: statistics.median(r["cpu"] for r in rs) for reader, rs in results.items()}
    server = _median_of(results, "server_cpu")
    ours = _median_of(results, "server_cpu_ours")
    rows = results["fast"][0]["rows"]
    for reader in results:
        print(f"median {reader:13s} {medians[reader]:7.2f} s wall  {cpu[reader]:6.2f} s CPU (this process)  "
              f"{_seconds(server[reader])} CPU (server; {_seconds(ours[reader])} our connections)  "
              f"{rows / medians[reader]:,.0f} rows/s  "
              f"peak RSS {memory[reader]:.0f} MB")
    for reader in [r for r in results if r != "fast"]:
        print(f"ratio {reader} / fast: {medians[reader] / medians['fast']:.2f}x wall, "
              f"{cpu[reader] / cpu['fast']:.2f}x CPU (this process)"
              + (f", {server[reader] / server['fast']:.2f}x CPU (server)" if server[reader] and server["fast"] else "")
              + (f", {ours[reader] / ours['fast']:.2f}x CPU (server, our connections)" if ours[reader] and ours["fast"]
                 else ""))


def _median_of(results: dict[str, list[dict]], field: str) -> dict[str, float | None]:
    return {reader: statistics.median(r[field] for r in rs) if all(r[field] is not None for r in rs) else None
            for reader, rs in results.items()}


def _seconds(value: float | None) -> str:
    return f"{value:6.2f} s" if value is not None else "     ? s"


if __name__ == "__main__":
    main()
