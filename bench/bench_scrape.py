"""Scrape load test: many concurrent Prometheus-like scrapers against a real ``usage-exporter serve``.

    .venv/bin/python bench/bench_scrape.py                       # 20 aligned scrapers, every 0.1 s, 200 each
    .venv/bin/python bench/bench_scrape.py --interval 0          # back to back: saturates the machine
    .venv/bin/python bench/bench_scrape.py --source /path/to/other/checkout   # same test, other code

What runs: a synthetic site is generated into SQLite files (``--hosts``, ``--years``, once per
``--workdir``), served under ``--sites`` site names by ``usage-exporter serve`` in a subprocess on
a free loopback port, and scraped once every site's first refresh is published. Each scraper is
its own process (so client-side GIL contention does not count as server latency) sending what
Prometheus sends (OpenMetrics Accept header, gzip) on a new connection per scrape, every
``--interval`` seconds with all clients aligned (each round is a burst of ``--clients``
simultaneous scrapes), or back to back with ``--interval 0``.
Bounded: ``--scrapes`` per client and ``--max-seconds`` overall; the server is stopped by its
process id at the end. Prints one JSON document: latency p50/p99/p99.9/max in ms, errors,
scrapes/s, body size, and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(source: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.Popen([sys.executable, "-c", "from exporter.cli import main; main()", *args],
                            cwd=source, env=env, **kwargs)


def prepare_site(workdir: Path, source: Path, hosts: int, years: float, sites: int) -> Path:
    """Generate the SQLite site once; write a config serving it under ``sites`` names."""
    main_db = workdir / "site" / "site.sqlite"
    if not main_db.exists():
        done = cli(source, "generate-site", "--db-url", f"sqlite:///{main_db}", "--hosts", str(hosts),
                   "--years", str(years), "--seed", "3").wait()
        if done != 0:
            sys.exit("generate-site failed")
    config = workdir / "sites.yaml"
    entries = "".join(f"  bench{n}:\n    db_url: sqlite:///{main_db}\n    refresh_interval: 3600\n"
                      f"    history_start: 2016-01-01\n" for n in range(sites))
    config.write_text(f"data_dir: {workdir / 'data'}\nsites:\n{entries}")
    return config


def wait_until_up(port: int, sites: int, deadline: float) -> int:
    """Scrape until every site reports up 1; returns the body size."""
    while time.monotonic() < deadline:
        try:
            status, body = scrape(port, plain=True)
            up = [line for line in body.splitlines() if line.startswith(b"openstack_usage_up{")]
            if status == 200 and len(up) == sites and all(line.endswith(b" 1.0") for line in up):
                return len(body)
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("the exporter did not publish every site in time")


def scrape(port: int, *, plain: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {} if plain else {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def scraper(port: int, scrapes: int, interval: float, stop_at: float, start, results) -> None:
    """One client: wait for the common start, scrape every ``interval`` s (0: back to back), report.

    With an interval all clients fire in the same instant each round (aligned scrape intervals, the
    burst a Prometheus fleet makes); back to back they saturate the machine (a stress test).
    """
    start.wait()
    first = time.monotonic()
    latencies, errors = [], 0
    for round_ in range(scrapes):
        time.sleep(max(0.0, first + round_ * interval - time.monotonic()))
        if time.monotonic() > stop_at:
            break
        began = time.perf_counter()
        try:
            status, _ = scrape(port)
            errors += status != 200
        except OSError:
            errors += 1
        latencies.append(time.perf_counter() - began)
    results.put((latencies, errors))


def load(port: int, clients: int, scrapes: int, interval: float, max_seconds: float) -> dict:
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    stop_at = time.monotonic() + max_seconds
    workers = [context.Process(target=scraper, args=(port, scrapes, interval, stop_at, start, results)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    start.set()
    collected = [results.get(timeout=max_seconds + 60) for _ in workers]
    wall = time.perf_counter() - began
    for worker in workers:
        worker.join()
    latencies = sorted(value for values, _ in collected for value in values)
    return {"clients": clients, "interval_s": interval, "scrapes": len(latencies), "errors": sum(errors for _, errors in collected),
            "seconds": round(wall, 2), "scrapes_per_second": round(len(latencies) / wall, 1),
            **{f"{name}_ms": round(1000 * quantile(latencies, q), 2)
               for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0))}}


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_scrape"))
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="Checkout whose code is served (default: this one).")
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--years", type=float, default=1.0)
    parser.add_argument("--sites", type=int, default=3, help="Site names serving the generated site.")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=200, help="Scrapes per client.")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="Seconds between one client's scrapes, all clients aligned (0: back to back).")
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = prepare_site(args.workdir, args.source.resolve(), args.hosts, args.years, args.sites)
    port = free_port()
    server = cli(args.source.resolve(), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
                 "--log-level", "warning", stderr=subprocess.DEVNULL)
    try:
        size = wait_until_up(port, args.sites, time.monotonic() + 600)
        gzipped = len(scrape(port)[1])
        load_before = os.getloadavg()
        report = load(port, args.clients, args.scrapes, args.interval, args.max_seconds)
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps({"source": str(args.source), "machine": f"{platform.node()} {os.cpu_count()} CPUs",
                      "body_bytes": size, "gzip_bytes": gzipped, **report,
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average_after": [round(x, 2) for x in os.getloadavg()]}, indent=1))


if __name__ == "__main__":
    main()
