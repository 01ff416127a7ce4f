"""Benchmark the synthetic site generator: wall time per step, peak RSS, rows written.

    .venv/bin/python bench/bench_generate.py                      # 500 hosts x 10 years, SQLite
    .venv/bin/python bench/bench_generate.py --hosts 100 --years 5 --kind kvm
    .venv/bin/python bench/bench_generate.py --db-url mysql+pymysql://root@127.0.0.1:3306/ --db-prefix bench_

Run it on an otherwise idle machine; the numbers go into BENCHMARKS.md.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import click

from exporter.sitegen import generate_site


@click.command()
@click.option("--hosts", type=int, default=500, show_default=True)
@click.option("--years", type=float, default=10.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--kind", type=click.Choice(["baremetal", "kvm"]), default="baremetal", show_default=True)
@click.option("--db-url", default=None, help="Default: a SQLite file in a temporary directory.")
@click.option("--db-prefix", default="bench_", show_default=True, help="Physical database prefix (MariaDB).")
def main(hosts: int, years: float, seed: int, kind: str, db_url: str | None, db_prefix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sitegen-") as tmp:
        url = db_url or f"sqlite:///{tmp}/main.sqlite"
        databases = None if url.startswith("sqlite") else {
            s: f"{db_prefix}{s}" for s in ("nova", "nova_api", "blazar", "chameleon_usage")}
        marks: list[tuple[str, float]] = []
        began = time.perf_counter()
        site = generate_site(url, hosts=hosts, years=years, seed=seed, kind=kind, databases=databases,
                             truth_dir=Path(tmp) / "truth",
                             progress=lambda label, done, total: marks.append((label, time.perf_counter())))
        wall = time.perf_counter() - began
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    previous = began
    click.echo(f"generate-site --kind {kind} --hosts {hosts} --years {years} --seed {seed} -> {url.split(':')[0]}")
    for label, at in marks:
        click.echo(f"  {label:<45} {at - previous:8.2f} s")
        previous = at
    rows = sum(site.row_counts.values())
    for name, count in sorted(site.row_counts.items()):
        click.echo(f"  {name:<45} {count:>10,} rows")
    click.echo(f"total: {wall:.1f} s wall, {cpu:.1f} s CPU (this process; wall grows on a busy machine), "
               f"{rows:,} rows ({rows / wall:,.0f} rows/s wall), peak RSS {rss_mb:,.0f} MB")
    if databases:
        _drop(url, databases.values())


def _drop(url: str, names) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
