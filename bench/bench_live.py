"""Benchmark the live exporter: refresh cost on a large site in MariaDB, and scrape latency.

    .venv/bin/python bench/bench_live.py --hosts 500 --years 10            # generate, measure, drop
    .venv/bin/python bench/bench_live.py --hosts 500 --years 10 --keep     # keep the databases
    .venv/bin/python bench/bench_live.py --prefix bench_live_ --reuse      # reuse kept databases

Measures (printed as one JSON document):
- generation time and row counts (context only);
- first refresh (full read of every table + engine) and its read/compute split;
- incremental refreshes (after touching ``--touch`` instance rows each time), full reloads;
- peak RSS of the process (ru_maxrss) after the refreshes;
- scrape latency p50/p99 and scrapes/s over ``--requests`` loopback requests from
  ``--clients`` threads, once idle and once while refreshes run back to back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.config import SiteConfig  # noqa: E402
from exporter.live import LiveExporter  # noqa: E402
from exporter.live.refresh import utc_now  # noqa: E402
from exporter.live.source import LiveSite  # noqa: E402

SCHEMAS = ("nova", "nova_api", "nova_cell0", "blazar", "chameleon_usage")


def generate(url: str, prefix: str, hosts: int, years: float, seed: int) -> dict:
    from exporter.sitegen import generate_site

    now = utc_now()
    whole = int(years)  # the generator adds calendar years: go back the same way, so its end is now
    start = (now.replace(year=now.year - whole) - dt.timedelta(days=round((years - whole) * 365, 6)))
    start = start.replace(minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    site = generate_site(url, hosts=hosts, years=years, seed=seed, start=start, quirks=set(),
                         databases={s: prefix + s for s in SCHEMAS}, truth_dir=f"/tmp/{prefix}truth")
    return {"seconds": round(time.perf_counter() - started, 1), "start": site.start.isoformat(),
            "end": site.end.isoformat(), "rows": sum(site.row_counts.values()), "row_counts": site.row_counts}


def history_start(url: str, prefix: str) -> dt.datetime:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        first = conn.exec_driver_sql(f"SELECT MIN(created_at) FROM `{prefix}nova`.compute_nodes").scalar_one()
    engine.dispose()
    return first.replace(minute=0, second=0, microsecond=0)


def touch_instances(url: str, prefix: str, count: int) -> None:
    """Simulate activity: ``count`` live instances get a fresh updated_at (as a state change would)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE `{prefix}nova`.instances SET updated_at = :now WHERE deleted = 0 "
                             f"ORDER BY id DESC LIMIT {int(count)}"), {"now": utc_now()})
    engine.dispose()


def timed_refresh(live: LiveSite) -> dict:
    started = time.perf_counter()
    live(utc_now())
    return {"seconds": round(time.perf_counter() - started, 3), "mode": live.tables.last_mode,
            "rows_read": live.tables.last_rows_read, **{k: round(v, 3) for k, v in live.timings.items()}}


def scrape_latencies(url: str, requests: int, clients: int) -> dict:
    def one(_):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
        return time.perf_counter() - started, len(body)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {"requests": requests, "clients": clients, "bytes": results[0][1],
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
            "max_ms": round(1000 * latencies[-1], 2), "scrapes_per_second": round(requests / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="mysql+pymysql://root@127.0.0.1:3306/")
    parser.add_argument("--prefix", default="bench_live_")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="use databases kept by an earlier --keep run")
    parser.add_argument("--keep", action="store_true", help="do not drop the databases at the end")
    parser.add_argument("--incremental", type=int, default=5, help="incremental refreshes to time")
    parser.add_argument("--touch", type=int, default=20, help="instance rows changed before each refresh")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    report: dict = {"hosts": args.hosts, "years": args.years}
    if not args.reuse:
        report["generate"] = generate(args.url, args.prefix, args.hosts, args.years, args.seed)
    try:
        site = SiteConfig(name="bench", display_name="bench", db_url=args.url,
                          databases={s: args.prefix + s for s in SCHEMAS},
                          history_start=history_start(args.url, args.prefix), query_timeout=300)
        live = LiveSite(site)
        report["first_refresh"] = timed_refresh(live)
        incremental = []
        for _ in range(args.incremental):
            touch_instances(args.url, args.prefix, args.touch)
            incremental.append(timed_refresh(live))
        report["incremental_refreshes"] = incremental
        full = LiveSite(site, full_reload_interval=0)
        full(utc_now())
        report["full_reload_refresh"] = timed_refresh(full)
        full.close()
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        report["scrape"] = scrape_benchmark(live, site, args)
        live.close()
    finally:
        if not args.keep:
            from tests.support import drop_databases

            drop_databases(args.prefix, args.url)
    print(json.dumps(report, indent=2, default=str))


def scrape_benchmark(live: LiveSite, site: SiteConfig, args) -> dict:
    """Scrape latency with the site's state published: idle, then while refreshes run back to back."""
    busy = threading.Event()

    def compute(now):
        return live(now) if busy.is_set() else last
    last = live(utc_now())
    out = {}
    with LiveExporter({site.name: (compute, 0.05)}, listen="127.0.0.1:0") as exporter:
        time.sleep(0.5)
        metrics = exporter.url + "/metrics"
        out["idle"] = scrape_latencies(metrics, args.requests, args.clients)
        busy.set()
        time.sleep(0.2)
        out["during_refreshes"] = scrape_latencies(metrics, args.requests, args.clients)
        busy.clear()
    return out


if __name__ == "__main__":
    main()
