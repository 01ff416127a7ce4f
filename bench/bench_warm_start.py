"""Time from `usage-exporter serve` starting to its first usage series: cold start vs warm start.

    .venv/bin/python bench/bench_extract.py --prefix bx500_ --generate     # the 500 x 10 site, once
    .venv/bin/python bench/bench_warm_start.py --prefix bx500_ --rounds 2

Each round: no saved state -> start (cold: reads every table, runs the engine) -> first usage
series -> wait for the saved state -> SIGTERM -> start again (warm) -> first usage series ->
SIGTERM. Each `serve` is a fresh process on a free loopback port, stopped by its pid. Prints both
times per round, medians, their ratio, the warm process's first refresh, and `uptime`.
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serves_usage(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return False
    return any(line.startswith("openstack_usage_nodes{") for line in text.splitlines())


def first_series(config: Path, log) -> tuple[subprocess.Popen, float]:
    port = free_port()
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", "from exporter.cli import main; main()", "serve", "--config",
                                str(config), "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
                               stdout=log, stderr=subprocess.STDOUT)
    while not serves_usage(f"http://127.0.0.1:{port}/metrics"):
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}; see {log.name}")
        time.sleep(0.1)
    return process, time.monotonic() - began


def stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=120)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


@click.command()
@click.option("--prefix", default="bx500_", show_default=True, help="Physical database prefix of the site.")
@click.option("--history-start", default="2016-01-01", show_default=True)
@click.option("--rounds", type=int, default=2, show_default=True)
def main(prefix: str, history_start: str, rounds: int) -> None:
    from exporter.config import prefixed_databases

    work = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    config = work / "sites.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(work / "data"), "sites": {"bench": {
        "db_url": ROOT_URL, "databases": prefixed_databases(prefix), "history_start": history_start,
        "refresh_interval": 60, "query_timeout": 600}}}))
    state = work / "data" / "bench" / "live-state" / "state.json"
    print("before:", uptime(), flush=True)
    cold, warm = [], []
    with open(work / "serve.log", "w") as log:
        for round_ in range(rounds):
            subprocess.run(["rm", "-rf", str(work / "data")], check=True)
            process, seconds = first_series(config, log)
            cold.append(seconds)
            while not state.is_file():  # the first refresh's state is saved right after it is served
                time.sleep(0.2)
            stop(process)
            process, seconds = first_series(config, log)
            warm.append(seconds)
            stop(process)
            print(f"round {round_ + 1}: cold {cold[-1]:6.1f} s  warm {warm[-1]:5.2f} s", flush=True)
    print("after:", uptime())
    print(f"median cold {statistics.median(cold):.1f} s, warm {statistics.median(warm):.2f} s, "
          f"ratio {statistics.median(cold) / statistics.median(warm):.0f}x")
    print(f"state on disk: {sum(f.stat().st_size for f in state.parent.rglob('*') if f.is_file()) / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
