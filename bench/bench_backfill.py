"""Backfill benchmark: OpenMetrics writer throughput and promtool single file vs per-window files.

    .venv/bin/python bench/bench_backfill.py                  # full size: writer only
    .venv/bin/python bench/bench_backfill.py --promtool       # + promtool comparison (smaller series set)

The timeline is synthetic but sized like a 500-host baremetal site over 10 years at 1h step:
9 node types x 8 leaves x 5 resources = 360 series x 87,660 hours (31.6M rows -> 63M samples,
gauges + counters). Results go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from exporter.backfill.blocks import backfill
from exporter.backfill.checked import checked_timeline
from exporter.backfill.openmetrics import (family_parts, sample_lines, sample_prefixes, sample_values,
                                           series_labels, write_samples)
from exporter.columns import TIMELINE_SCHEMA

NODE_TYPES = ("compute_haswell", "compute_skylake", "compute_cascadelake_r", "storage", "gpu_p100", "gpu_v100",
              "gpu_rtx_6000", "fpga", "unknown")
LEAVES = (("reservable", "available"), ("reservable", "maintenance"), ("reservable", "idle"),
          ("reservable", "active"), ("reservable", "stopped"), ("ondemand", "available"),
          ("ondemand", "active"), ("ondemand", "stopped"))
RESOURCES = {"nodes": 1.0, "vcpus": 48.0, "memory_bytes": 196608 * 2.0**20, "disk_bytes": 240 * 2.0**30, "gpus": 4.0}


def synthetic(node_types: int, years: float, resources: int, start: dt.datetime) -> pl.DataFrame:
    """Dense hourly timeline; values are small integer node counts times a per-resource size."""
    hours = int(years * 8766)
    times = pl.datetime_range(start, start + dt.timedelta(hours=hours - 1), "1h", eager=True, time_unit="us")
    keys = pl.DataFrame([(n, p, s, r) for n in NODE_TYPES[:node_types] for p, s in LEAVES
                         for r in list(RESOURCES)[:resources]],
                        schema=["node_type", "pool", "state", "resource"], orient="row")
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 60, size=keys.height * hours).astype(np.float64)
    frame = (keys.with_columns(scale=pl.col("resource").replace_strict(RESOURCES, return_dtype=pl.Float64))
             .join(pl.DataFrame({"timestamp": times}), how="cross")
             .with_columns(site=pl.lit("chi_uc"), value=pl.Series(counts) * pl.col("scale")))
    return frame.select(pl.col(n).cast(t) for n, t in TIMELINE_SCHEMA.items())


class CountingSink:
    """A binary file-like object that only counts what is written."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> int:
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def timed(label: str, func):
    started = time.perf_counter()
    value = func()
    seconds = time.perf_counter() - started
    print(f"  {label:<46} {seconds:8.2f} s")
    return value, seconds


def bench_writer(work: Path, args) -> None:
    frame = synthetic(args.node_types, args.years, 5, dt.datetime(2016, 1, 1))
    (work / "tl").mkdir()
    frame.write_parquet(work / "tl" / "timeline.parquet")
    print(f"writer: {frame.height:,} timeline rows, {frame.height * 2:,} samples")
    checked, _ = timed("checked_timeline", lambda: checked_timeline(frame))
    series = series_labels(checked, job="openstack-usage", instance="openstack-usage-exporter")
    values, _ = timed("sample_values (counters, order)", lambda: sample_values(checked))
    sink = CountingSink()
    prefixes = sample_prefixes(series)
    _, render = timed("render text, all windows, into memory (no disk)", lambda: [
        write_samples(family_parts(sample_lines(part, prefixes)), sink)
        for part in values.with_columns(w=pl.col("t") // (1458 * 3600)).partition_by("w", include_key=False)])
    print(f"  -> {values.height / render / 1e6:.2f} M samples/s rendering, {sink.bytes / values.height:.0f} bytes/sample")
    del frame, checked, values
    result, seconds = timed("backfill() end to end (read..files+manifest)",
                            lambda: backfill(work / "tl", work / "out", now=dt.datetime(2030, 1, 1)))
    size = sum(f.bytes for f in result.files)
    print(f"  -> {result.samples:,} samples in {len(result.files)} files, {size / 1e9:.2f} GB; "
          f"{result.samples / seconds / 1e6:.2f} M samples/s end to end, "
          f"{result.samples / result.write_seconds / 1e6:.2f} M samples/s text+write stage")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.full_promtool:
        (work / "blocks").mkdir()
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            _, stage = timed(f"promtool on the {len(result.files)} window files, {os.cpu_count()} in parallel",
                             lambda: list(pool.map(lambda c: subprocess.run(c[:-1] + (str(work / "blocks"),),
                                                                            check=True, capture_output=True),
                                                   result.commands)))
        print(f"  -> {result.samples / stage / 1e6:.2f} M samples/s through promtool")


def bench_promtool(work: Path, args) -> None:
    """promtool on one file (large blocks: few passes) vs one file per 1458h window (two passes each).

    "One parse of all the data" is the marginal cost of one more pass over the single file:
    (T(13122h) - T(39366h)) / (passes(13122h) - passes(39366h)), passes = blocks + 1.
    """
    frame = synthetic(1, args.years, args.promtool_resources, dt.datetime(2016, 1, 1))
    root = work / "pt"
    (root / "tl").mkdir(parents=True)
    frame.write_parquet(root / "tl" / "timeline.parquet")
    now = dt.datetime(2030, 1, 1)
    series = frame.select(pl.struct("pool", "state", "resource").n_unique()).item()
    print(f"promtool: {frame.height * 2:,} samples ({series} timeline series, gauge + counter each)")
    files = backfill(root / "tl", root / "files", now=now)
    single = root / "single.om"
    with open(single, "wb") as out:  # the same samples as ONE file: concatenate the window files' bodies
        for i, info in enumerate(files.files):
            data = (root / "files" / info.path).read_bytes()
            out.write(data[:-len(b"# EOF\n")] if i < len(files.files) - 1 else data)
    print(f"  single file {single.stat().st_size / 1e6:.0f} MB (families repeat per window: promtool accepts)")
    runs = {}
    for hours in (39366, 13122) + ((1458,) if args.single_1458h else ()):
        target = root / f"single-{hours}"
        _, seconds = timed(f"single file, --max-block-duration={hours}h", lambda: subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", f"--max-block-duration={hours}h",
             str(single), str(target)], check=True, capture_output=True))
        passes = len([p for p in target.iterdir() if (p / "meta.json").exists()]) + 1
        runs[hours] = (seconds, passes)
        print(f"    {passes - 1} blocks -> {passes} passes over the file")
    (t1, p1), (t2, p2) = runs[39366], runs[13122]
    parse_once = (t2 - t1) / (p2 - p1)
    print(f"  one parse of all the data (marginal pass) ~ {parse_once:.2f} s")
    commands = [command[:-1] + (str(root / "perwindow-blocks"),) for command in files.commands]
    (root / "perwindow-blocks").mkdir()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        _, stage = timed(f"per-window files: {len(commands)} promtool runs, {os.cpu_count()} in parallel",
                         lambda: list(pool.map(lambda c: subprocess.run(c, check=True, capture_output=True),
                                               commands)))
    print(f"    promtool stage = {stage / parse_once:.1f}x one parse of all the data")
    print(json.dumps({"samples": frame.height * 2, "parse_once_s": round(parse_once, 2),
                      **{f"single_{h}h_s": round(t, 1) for h, (t, _) in runs.items()},
                      "per_window_promtool_s": round(stage, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-types", type=int, default=9)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--promtool", action="store_true", help="also compare promtool runs")
    parser.add_argument("--promtool-resources", type=int, default=2,
                        help="resources in the promtool comparison (8 leaves x this many series)")
    parser.add_argument("--single-1458h", action="store_true",
                        help="also time the single file with 1458h blocks (one pass per block: slow)")
    parser.add_argument("--full-promtool", action="store_true",
                        help="also run promtool on the full-size window files (parallel)")
    parser.add_argument("--skip-writer", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        if not args.skip_writer:
            bench_writer(work, args)
        if args.promtool:
            bench_promtool(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
