"""Benchmark: the backfill's counter sums, a float running sum against the exact sum rounded once.

Run:  nice -n 5 .venv/bin/python bench/bench_counters.py [--node-types 9] [--years 1] [--rounds 5]
On bench_backfill's synthetic dense hourly timeline, times the counter column alone, both ways,
interleaved in each round (medians): ``cum_sum().shift().over(rank)`` as before, and
``exporter.engine.running.running_sum_before`` as ``openmetrics.sample_values`` now computes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backfill import synthetic  # noqa: E402

from exporter.backfill.checked import checked_timeline  # noqa: E402
from exporter.engine.running import running_sum_before  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node-types", type=int, default=9)
    parser.add_argument("--years", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    checked = checked_timeline(synthetic(args.node_types, args.years, 5, dt.datetime(2024, 1, 1)))
    gauges = checked.samples.select("rank", "value")
    terms = pl.col("value") * checked.step_seconds
    ways = {
        "float running sum": lambda: gauges.select(terms.cum_sum().shift(1, fill_value=0.0).over("rank")),
        "exact, rounded once": lambda: gauges.lazy().select(running_sum_before(terms, over="rank")).collect(),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{gauges.height:,} samples, median of {args.rounds} interleaved rounds:")
    for name, median in medians.items():
        print(f"  {name:22s} {median:7.3f} s")
    print(f"  ratio {medians['exact, rounded once'] / medians['float running sum']:.2f}x")


if __name__ == "__main__":
    main()
