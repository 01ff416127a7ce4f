"""Benchmark: spans -> timeline on synthetic data (default 10^6 spans × 10 years, hourly).

Run:  .venv/bin/python bench/bench_timeline.py [--spans 1000000] [--years 10] [--node-types 5]
Prints wall time per stage and peak RSS (resource.getrusage). The spans are random (a
deterministic hash of the row number), so they exercise the math, not realistic semantics.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import datetime, timedelta

import polars as pl

from exporter.columns import SPAN_SCHEMA, conform
from exporter.reconstruct.leaves import SERIES
from exporter.reconstruct.audit import check_hours_conserved, hours_conservation
from exporter.reconstruct.timeline import timeline_from_spans

START = datetime(2016, 1, 1)


def synthetic_spans(n: int, *, years: int, node_types: int) -> pl.DataFrame:
    """``n`` random spans over ``years`` years, spread over every level-series and node type."""
    seconds = years * 365 * 86_400
    draw = [pl.int_range(0, n, dtype=pl.UInt64).hash(seed) for seed in range(5)]
    series = pl.DataFrame({"_s": range(len(SERIES)), "level": [s[0] for s in SERIES],
                           "booking": [s[1] for s in SERIES]})
    spans = (
        pl.select(
            _s=(draw[0] % len(SERIES)).cast(pl.Int64),
            node_type=pl.format("type{}", draw[1] % node_types),
            _offset=(draw[2] % seconds).cast(pl.Int64),
            _length=(draw[3] % (60 * 86_400) + 3_600).cast(pl.Int64),
            _open=(draw[4] % 50) == 0,
        )
        .join(series, on="_s", how="left")
        .with_columns(
            site=pl.lit("bench"),
            start=pl.lit(START) + pl.duration(seconds=pl.col("_offset")),
            nodes=pl.lit(1.0),
            vcpus=pl.lit(48.0),
            memory_mb=pl.lit(196_608.0),
            disk_gb=pl.lit(240.0),
            gpus=(pl.col("_offset") % 3).cast(pl.Float64),
        )
        .with_columns(
            end=pl.when(pl.col("_open"))
            .then(None)
            .otherwise(pl.col("start") + pl.duration(seconds=pl.col("_length")))
        )
    )
    return conform(spans, SPAN_SCHEMA)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--node-types", type=int, default=5)
    args = parser.parse_args()
    end = START + timedelta(days=365 * args.years)
    step = timedelta(hours=1)

    t0 = time.perf_counter()
    spans = synthetic_spans(args.spans, years=args.years, node_types=args.node_types)
    t1 = time.perf_counter()
    timeline = timeline_from_spans(spans, start=START, end=end, step=step, open_end=end)
    t2 = time.perf_counter()
    timeline_peak_mib = peak_rss_mib()
    conservation = hours_conservation(spans, timeline, start=START, end=end, step=step, open_end=end)
    check_hours_conserved(conservation)
    t3 = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(f"spans: {spans.height:,}  grid points: {timeline['timestamp'].n_unique():,}  "
          f"timeline rows: {timeline.height:,}")
    print(f"generate spans      {t1 - t0:6.2f} s")
    print(f"timeline_from_spans {t2 - t1:6.2f} s")
    print(f"hours conservation  {t3 - t2:6.2f} s  (max |difference| "
          f"{conservation['difference'].abs().max():.3g} resource-hours)")
    print(f"peak RSS after timeline {timeline_peak_mib:6.0f} MiB, after check {peak_rss_mib():6.0f} MiB")
    print(f"process CPU time    user {cpu.ru_utime:.2f} s, sys {cpu.ru_stime:.2f} s")
    print(f"timeline in memory  {timeline.estimated_size('mb'):6.0f} MB")


if __name__ == "__main__":
    main()
