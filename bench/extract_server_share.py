"""The MariaDB server's CPU for the fast reader's queries, per query shape and per connection kind.

    .venv/bin/python bench/extract_server_share.py --prefix bx500_ shapes nova.instance_actions_events --rounds 2
    .venv/bin/python bench/extract_server_share.py --prefix bx500_ split    # one fast extract of the site

The server is shared, so its process CPU also holds other clients' work. Here each query runs
as a bench user of its own (``BENCH_USER``, SELECT on the site only, dropped at the end) and its
cost is the CPU of the server threads that served that user (MariaDB runs one thread per
connection; ``information_schema.processlist`` gives its ``TID``, polled every 5 ms), from
``/proc/<mariadbd>/task/<tid>/stat``. The server must run on this host.

``shapes``: one table read whole by connectorx in several SELECT shapes — the plain columns, the
range query of session 5 (``+ INTERVAL 0 SECOND`` per datetime, an invalid-date flag, ``CRC32``,
the recent-row predicate), today's range query — and the SQLAlchemy reader's query (text
protocol), plus the key-check scan. ``split``: a whole fast extract, the server CPU of the
consistent view's connection (key checks, range ends, recent rows) and of connectorx's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import click
import polars as pl
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_extract import ROOT_URL, ServingThreads, bench_user  # noqa: E402
from exporter.adapters.registry import declared_tables  # noqa: E402
from exporter.config import SiteConfig, prefixed_databases  # noqa: E402
from exporter.db import open_engine  # noqa: E402
from exporter.extract.connectorx_source import quoted  # noqa: E402
from exporter.extract.fastread import CUT_MARGIN, _FastTable  # noqa: E402
from exporter.extract.tableread import ConsistentView, plan_table  # noqa: E402

BENCH_USER = "bxshare"  # not bench_extract's, so both can run at once
BENCH_URL = f"mysql+pymysql://{BENCH_USER}@127.0.0.1:3306/"
CX_URI = f"mysql://{BENCH_USER}@127.0.0.1:3306/information_schema"
SETUP = ["SET NAMES utf8mb4", "SET time_zone = '+00:00'", "SET SESSION TRANSACTION READ ONLY"]


def served(root: sa.Engine) -> ServingThreads:
    """The server CPU per thread spent serving BENCH_USER, and what kind of connection each served."""
    return ServingThreads(root, user=BENCH_USER, kind=_kind)


def _kind(info: str) -> str:
    if "__crc" in info:
        return "connectorx"
    return "view" if info else "idle"


def _plan(prefix: str, name: str):
    engine = open_engine(ROOT_URL, prefixed_databases(prefix))
    source = next(s for s in declared_tables() if s.name == name)
    with ConsistentView(engine) as view:
        conn = view.connection()
        plan = plan_table(conn, source)
        table = _FastTable.of(conn, plan, view.started_at - CUT_MARGIN)
    engine.dispose()
    return plan, table


def _session5_query(plan, table, cut: str) -> str:
    """The range query of session 5 (whole table), rebuilt for comparison."""
    def interval(name):
        return f"({quoted(name)} + INTERVAL 0 SECOND)"
    dts = [c.name for c in plan.columns if c.dtype == pl.Datetime("us")]
    columns = [f"{interval(c.name)} AS {quoted(c.name)}" if c.name in dts
               else f"CAST({quoted(c.name)} AS CHAR) AS {quoted(c.name)}" if c.dtype == pl.Float64() else quoted(c.name)
               for c in plan.columns]
    flags = " + ".join(f"(({quoted(n)} IS NOT NULL AND {interval(n)} IS NULL) << {i})" for i, n in enumerate(dts))
    change = [n for n in ("created_at", "updated_at", "deleted_at") if n in {c.name for c in plan.columns}]
    recent = " OR ".join(f"COALESCE({quoted(n)} >= '{cut}', 0)" for n in change)
    return (f"SELECT {', '.join(columns)}{', ' + flags + ' AS __bad' if flags else ''}, CRC32({quoted(table.key)}) AS "
            f"__crc0, ({recent}) AS __recent FROM {table.physical} ORDER BY {quoted(table.key)}")


@click.group()
@click.option("--prefix", default="bx500_", show_default=True)
@click.pass_context
def main(ctx: click.Context, prefix: str) -> None:
    ctx.obj = prefix


@main.command()
@click.argument("table_name")
@click.option("--rounds", type=int, default=2, show_default=True)
@click.pass_obj
def shapes(prefix: str, table_name: str, rounds: int) -> None:
    """Server CPU of one table read whole in several SELECT shapes."""
    plan, table = _plan(prefix, table_name)
    key = quoted(table.key)
    whole, _ = table.query(*(0, None, 2**62) if table.numeric_key else ("", None, "\U0010ffff"), ordered=False)
    whole = whole[:whole.index(" WHERE ")] + (f" ORDER BY {key}" if table.clustered else "")
    cut = "2000-01-01 00:00:00"
    cx_shapes = {
        "plain columns, ORDER BY key": f"SELECT {', '.join(quoted(c.name) for c in plan.columns)}, 0 AS __crc "
                                       f"FROM {table.physical} ORDER BY {key}",
        "session 5 range query": _session5_query(plan, table, cut).replace("__crc0", "__crc"),
        "today's range query": whole,
    }
    texts = ", ".join(f"CAST({quoted(c.name)} AS CHAR) AS {quoted(c.name)}" if c.dtype == pl.Datetime("us")
                      else quoted(c.name) for c in plan.columns)
    root = sa.create_engine(ROOT_URL)
    bench_user(root, prefix, create=True, user=BENCH_USER)
    bench = sa.create_engine(BENCH_URL)
    try:
        for _ in range(rounds):
            for label, query in cx_shapes.items():
                with served(root) as serving:
                    rows = pl.read_database_uri(query, CX_URI, engine="connectorx", pre_execution_query=SETUP).height
                print(f"{label:32s} {serving.seconds:6.2f} s server CPU  {rows:,} rows", flush=True)
            for label, query in (("SQLAlchemy reader's query", f"SELECT {texts} FROM {table.physical} ORDER BY {key}"),
                                 ("key-check scan", f"SELECT COUNT(*), SUM(CRC32({key})), BIT_XOR(CRC32({key})), "
                                                    f"MIN({key}), MAX({key}) FROM {table.physical}")):
                with served(root) as serving, bench.connect() as conn:
                    result = conn.execution_options(stream_results=True).exec_driver_sql(query)
                    rows = sum(len(part) for part in result.partitions(50_000))
                print(f"{label:32s} {serving.seconds:6.2f} s server CPU  {rows:,} rows", flush=True)
    finally:
        bench.dispose()
        bench_user(root, prefix, create=False, user=BENCH_USER)


@main.command()
@click.pass_obj
def split(prefix: str) -> None:
    """One fast extract of the whole site: the server CPU of the view's and of connectorx's connections."""
    from exporter.extract.copy import extract_snapshot

    root = sa.create_engine(ROOT_URL)
    bench_user(root, prefix, create=True, user=BENCH_USER)
    try:
        site = SiteConfig(name="b", display_name="b", db_url=BENCH_URL, databases=prefixed_databases(prefix))
        began, cpu = time.perf_counter(), os.times()
        with served(root) as serving, tempfile.TemporaryDirectory(prefix="bench-extract-") as out:
            extract_snapshot(site, Path(out), snapshot_id="s")
        wall, done = time.perf_counter() - began, os.times()
    finally:
        bench_user(root, prefix, create=False, user=BENCH_USER)
    shares: dict[str, float] = {}
    for tid, seconds in serving.cpu.items():
        kind = "connectorx" if "connectorx" in serving.kinds[tid] else "view"  # a thread reused by both: connectorx
        shares[kind] = shares.get(kind, 0.0) + seconds
    print(f"wall {wall:.2f} s, this process {done.user + done.system - cpu.user - cpu.system:.2f} s CPU; server CPU "
          f"of our connections: view {shares.get('view', 0):.2f} s, connectorx {shares.get('connectorx', 0):.2f} s, "
          f"total {sum(shares.values()):.2f} s")


if __name__ == "__main__":
    main()
