"""Backfill benchmark: OpenMetrics writer throughput and promtool single file vs per-window files.

    .venv/bin/python bench/bench_backfill.py                  # full size: writer only
    .venv/bin/python bench/bench_backfill.py --promtool       # + promtool comparison (smaller series set)

The timeline is synthetic but sized like a 500-host baremetal site over 10 years at 1h step:
9 node types x 8 leaves x 5 resources = 360 series x 87,660 hours (31.6M rows -> 63M samples,
gauges + counters). Results go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from exporter.backfill import backfill
from exporter.openmetrics import (check_timeline, sample_lines, sample_prefixes, sample_values, series_labels,
                                  write_samples)
from exporter.schema import TIMELINE_SCHEMA

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
    checked, _ = timed("check_timeline", lambda: check_timeline(frame))
    series = series_labels(checked, job="openstack-usage", instance="openstack-usage-exporter")
    values, _ = timed("sample_values (counters, order)", lambda: sample_values(checked, series))
    sink = CountingSink()
    prefixes = sample_prefixes(series)
    _, render = timed("render text, all windows, into memory (no disk)", lambda: [
        write_samples(sample_lines(part, prefixes), sink)
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


def bench_promtool(work: Path, args) -> None:
    frame = synthetic(1, args.years, args.promtool_resources, dt.datetime(2016, 1, 1))
    root = work / "pt"
    (root / "tl").mkdir(parents=True)
    frame.write_parquet(root / "tl" / "timeline.parquet")
    now = dt.datetime(2030, 1, 1)
    print(f"promtool: {frame.height * 2:,} samples ({frame.select(pl.struct('pool', 'state', 'resource').n_unique()).item()}"
          " timeline series)")
    files = backfill(root / "tl", root / "files", now=now)
    single = root / "single.om"
    with open(single, "wb") as out:  # the same samples as ONE file: concatenate the window files' bodies
        for i, info in enumerate(files.files):
            data = (root / "files" / info.path).read_bytes()
            out.write(data[:-len(b"# EOF\n")] if i < len(files.files) - 1 else data)
    print(f"  single file {single.stat().st_size / 1e6:.0f} MB (families interleaved per window: promtool accepts)")
    runs = {}
    for hours in (39366, 1458):
        target = root / f"single-{hours}"
        _, runs[hours] = timed(f"single file, --max-block-duration={hours}h", lambda: subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", f"--max-block-duration={hours}h",
             str(single), str(target)], check=True, capture_output=True))
        blocks = [p for p in target.iterdir() if (p / "meta.json").exists()]
        print(f"    {len(blocks)} blocks -> {len(blocks) + 1} parses of the file; "
              f"one parse ~ {runs[hours] / (len(blocks) + 1):.2f} s")
    parse_once = runs[39366] / (len(list((root / "single-39366").glob("*/meta.json"))) + 1)
    result, seconds = timed("per-window files (1458h), parallel promtool",
                            lambda: backfill(root / "tl", root / "perwindow", blocks=True, now=now))
    print(f"    {len(result.blocks)} blocks from {len(result.files)} files; write+promtool stage "
          f"{result.promtool_seconds:.1f} s = {result.promtool_seconds / parse_once:.1f}x one parse of all the data")
    print(json.dumps({"parse_once_s": round(parse_once, 2), "single_39366h_s": round(runs[39366], 1),
                      "single_1458h_s": round(runs[1458], 1), "per_window_stage_s": round(result.promtool_seconds, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-types", type=int, default=9)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--promtool", action="store_true", help="also compare promtool runs")
    parser.add_argument("--promtool-resources", type=int, default=2,
                        help="resources in the promtool comparison (8 leaves x this many series)")
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
