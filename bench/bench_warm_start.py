"""Time from `usage-exporter serve` starting to its first usage series: cold start vs warm start.

    .venv/bin/python bench/bench_warm_start.py --prefix bx500_ --generate   # generates the 500 x 10 site first
    .venv/bin/python bench/bench_warm_start.py --prefix bx500_              # reuses it
    .venv/bin/python bench/bench_warm_start.py --prefix bx500_ --tree /tmp/old-checkout --tree .   # side by side

For each source tree (``--tree``, default this checkout; another checkout runs with this venv's
packages, its own ``exporter`` first on PYTHONPATH): no saved state -> start (cold: reads every
table, runs the engine) -> first usage series -> wait for the saved state -> SIGTERM. Then
``--rounds`` warm restarts per tree, the trees interleaved: start -> first usage series ->
SIGTERM (``--catch-up``: after its first refresh, also timed). Each `serve` is a fresh process on
a free loopback port, stopped by its pid. Prints each time with the process's CPU time (user +
sys) until then, the medians per tree, and `uptime`.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import click
import yaml

ROOT_URL = "mysql+pymysql://root@127.0.0.1:3306/"
REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serves(url: str, start: str) -> bool:
    """Whether ``url`` answers with a line starting with ``start``."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return False
    return any(line.startswith(start) for line in text.splitlines())


def cpu_seconds(pid: int) -> float:
    """user + sys CPU time of a running process (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def first_series(tree: Path, config: Path, log) -> tuple[subprocess.Popen, str, float, float]:
    """Start `serve` from ``tree``; (process, its URL, wall seconds, CPU seconds) until its first usage series."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(tree))
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", "from exporter.cli import main; main()", "serve", "--config",
                                str(config), "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree)
    url = f"http://127.0.0.1:{port}/metrics"
    while not serves(url, "openstack_usage_nodes{"):
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}; see {log.name}")
        time.sleep(0.05)
    return process, url, time.monotonic() - began, cpu_seconds(process.pid)


def refreshed(url: str) -> None:
    """Wait for the first refresh of the process behind ``url`` (its refresh duration is served)."""
    while not serves(url, "openstack_usage_refresh_duration_seconds{"):
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=300)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def site_config(work: Path, name: str, prefix: str, history_start: str) -> Path:
    from exporter.config import prefixed_databases

    config = work / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(work / name), "sites": {"bench": {
        "db_url": ROOT_URL, "databases": prefixed_databases(prefix), "history_start": history_start,
        "refresh_interval": 60, "query_timeout": 600}}}))
    return config


@click.command()
@click.option("--prefix", default="bx500_", show_default=True, help="Physical database prefix of the site.")
@click.option("--history-start", default="2016-01-01", show_default=True)
@click.option("--rounds", type=int, default=5, show_default=True, help="Warm restarts per tree.")
@click.option("--tree", "trees", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Source tree to run `serve` from (repeatable, interleaved) [default: this checkout].")
@click.option("--catch-up", is_flag=True, help="Also wait for each warm process's first refresh (timed).")
@click.option("--generate", is_flag=True, help="Generate the site first (drops and re-creates its databases).")
@click.option("--hosts", type=int, default=500, show_default=True, help="With --generate.")
@click.option("--years", type=float, default=10.0, show_default=True, help="With --generate.")
def main(prefix: str, history_start: str, rounds: int, trees: tuple[Path, ...], catch_up: bool, generate: bool,
         hosts: int, years: float) -> None:
    import sqlalchemy as sa

    from exporter.config import prefixed_databases

    trees = tuple(tree.resolve() for tree in trees) or (REPO,)
    if generate:
        from exporter.sitegen import generate_site

        with tempfile.TemporaryDirectory() as truth:
            generate_site(ROOT_URL, hosts=hosts, years=years, seed=7, databases=prefixed_databases(prefix),
                          truth_dir=truth)
    engine = sa.create_engine(ROOT_URL)
    with engine.connect() as conn:
        present = {row[0] for row in conn.exec_driver_sql("SHOW DATABASES")}
    engine.dispose()
    if f"{prefix}nova" not in present:
        raise SystemExit(f"no site with database prefix {prefix!r} on {ROOT_URL}: add --generate (~10 min quiet)")
    work = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    configs = {tree: site_config(work, f"tree{i}", prefix, history_start) for i, tree in enumerate(trees)}
    print("before:", uptime(), flush=True)
    cold: dict[Path, tuple[float, float]] = {}
    warm: dict[Path, list[tuple[float, float, float]]] = {tree: [] for tree in trees}
    with open(work / "serve.log", "w") as log:
        for tree, config in configs.items():
            process, _, seconds, cpu = first_series(tree, config, log)
            cold[tree] = (seconds, cpu)
            state = work / config.stem / "bench" / "live-state" / "state.json"
            while not state.is_file():  # the first refresh's state is saved right after it is served
                time.sleep(0.2)
            stop(process)
            print(f"cold  {tree}: {seconds:7.2f} s wall, {cpu:6.2f} s CPU", flush=True)
        for round_ in range(rounds):
            for tree in (trees if round_ % 2 == 0 else trees[::-1]):
                began = time.monotonic()
                process, url, seconds, cpu = first_series(tree, configs[tree], log)
                if catch_up:
                    refreshed(url)
                caught_up = time.monotonic() - began
                stop(process)
                warm[tree].append((seconds, cpu, caught_up))
                print(f"warm  {tree}: {seconds:7.2f} s wall, {cpu:6.2f} s CPU"
                      + (f"; first refresh done after {caught_up:.1f} s" if catch_up else ""), flush=True)
    print("after:", uptime())
    for tree in trees:
        walls, cpus, caught = ([row[i] for row in warm[tree]] for i in range(3))
        print(f"median warm start {statistics.median(walls):.2f} s wall ({min(walls):.2f}-{max(walls):.2f}), "
              f"{statistics.median(cpus):.2f} s CPU; cold {cold[tree][0]:.1f} s: {tree}")
        if catch_up:
            print(f"  first refresh after a warm start done after {statistics.median(caught):.1f} s (median)")
        state = work / configs[tree].stem / "bench" / "live-state"
        print(f"  state on disk: {sum(f.stat().st_size for f in state.rglob('*') if f.is_file()) / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
