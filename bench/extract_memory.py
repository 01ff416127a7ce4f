"""Peak memory of `extract` on one large MariaDB table, at two table sizes.

Bounded memory means the peak RSS barely grows when the table grows 4x. Usage:

    .venv/bin/python bench/extract_memory.py [--rows 500000] [--batch-rows 50000]

Creates ``bx<random>_nova.instance_actions`` with ROWS and 4*ROWS rows (MariaDB's sequence
engine), extracts each in a fresh process, prints rows, seconds and peak RSS, drops the database.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid

import sqlalchemy as sa

ROOT_URL = "mysql+pymysql://root@127.0.0.1:3306/"

CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
from exporter.config import SiteConfig, prefixed_databases
from exporter.extract.copy import extract_snapshot
from exporter.adapters.registry import declared_tables
prefix, batch = sys.argv[1], int(sys.argv[2])
source = [s for s in declared_tables() if s.name == "nova.instance_actions"]
site = SiteConfig(name="bench", display_name="bench", db_url=%r, databases=prefixed_databases(prefix))
began = time.perf_counter()
result = extract_snapshot(site, Path(tempfile.mkdtemp()), sources=source, batch_rows=batch)
entry = result.manifest["tables"]["nova.instance_actions"]
print(json.dumps({"rows": entry["rows"], "seconds": round(time.perf_counter() - began, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "parquet_mb": round(entry["bytes"] / 2**20, 1)}))
""" % ROOT_URL


def fill(conn, prefix: str, rows: int) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{prefix}nova`.instance_actions")
    conn.exec_driver_sql(
        f"CREATE TABLE `{prefix}nova`.instance_actions (id INT PRIMARY KEY, instance_uuid VARCHAR(36), "
        "action VARCHAR(255), request_id VARCHAR(255), start_time DATETIME, finish_time DATETIME, "
        "message VARCHAR(255), created_at DATETIME, updated_at DATETIME, deleted_at DATETIME, deleted INT)")
    conn.exec_driver_sql(
        f"INSERT INTO `{prefix}nova`.instance_actions SELECT seq, UUID(), ELT(1 + MOD(seq, 4), 'create', 'stop', "
        "'start', 'delete'), CONCAT('req-', UUID()), '2020-01-01' + INTERVAL seq SECOND, "
        "'2020-01-01' + INTERVAL seq + 30 SECOND, NULL, '2020-01-01' + INTERVAL seq SECOND, NULL, NULL, 0 "
        f"FROM `{prefix}nova`.seq_1_to_{rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch-rows", type=int, default=50_000)
    args = parser.parse_args()
    prefix = f"bx{uuid.uuid4().hex[:6]}_"
    engine = sa.create_engine(ROOT_URL)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{prefix}nova`")
        for rows in (args.rows, 4 * args.rows):
            with engine.begin() as conn:
                fill(conn, prefix, rows)
            out = subprocess.run([sys.executable, "-c", CHILD, prefix, str(args.batch_rows)],
                                 capture_output=True, text=True, check=True).stdout
            print(json.dumps({"batch_rows": args.batch_rows, **json.loads(out)}))
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{prefix}nova`")
        engine.dispose()


if __name__ == "__main__":
    main()
