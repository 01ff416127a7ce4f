"""Benchmark: `usage-exporter explain` on a 500-host x 10-year reconstruct output (wall time per answer).

Usage::

    .venv/bin/python bench/bench_explain.py OUT [--repeat 7]

OUT is a reconstruct output, e.g. the one bench/bench_reconstruct.py writes for its 500 x 10
site. Each case is one library call (exactly what the CLI does before printing), timed in this
process after a warm-up; the median and the range over ``--repeat`` runs are printed. Then the
whole process: ``usage-exporter explain OUT --at T --json`` (interpreter start, imports, answer,
output) and ``usage-exporter --help`` alone (start-up cost), run alternately. Target: < 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "all leaves, nodes": {},
    "reservable idle, nodes": {"pools": ("reservable",), "states": ("idle",)},
    "one node type, vcpus": {"node_types": ("compute_skylake",), "resource": "vcpus"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from exporter.explain import Selection, explain_output, history_grid

    grid = history_grid(args.out)
    times = [grid.start + (grid.cells * grid.step) * share for share in (0.1, 0.5, 0.999)]
    explain_output(args.out, times[0], Selection())  # warm-up: imports, page cache
    for name, filters in CASES.items():
        for at in times:
            seconds, cpu = [], []
            for _ in range(args.repeat):
                began, began_cpu = time.perf_counter(), time.process_time()
                result = explain_output(args.out, at, Selection(**filters))
                seconds.append(time.perf_counter() - began)
                cpu.append(time.process_time() - began_cpu)
            report(f"{name:<26} {at:%Y-%m-%d %H:%M}  spans {result['spans_total']:>5}", seconds, cpu)
    whole_process(args.out, times[1], args.repeat)


def report(label: str, seconds: list[float], cpu: list[float]) -> None:
    """Wall median and range, and the median CPU time (user + sys, all threads): steadier on a busy host."""
    print(f"{label}  median {statistics.median(seconds):.3f} s  (min {min(seconds):.3f}, max {max(seconds):.3f})"
          f"  CPU median {statistics.median(cpu):.3f} s")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def whole_process(out: Path, at: dt.datetime, repeat: int) -> None:
    """Wall time of the console script as a user runs it, explain and --help alternately."""
    script = str(Path(sys.executable).with_name("usage-exporter"))
    commands = {"CLI: usage-exporter explain OUT --at T --json": [script, "explain", str(out), "--at",
                                                                  f"{at:%Y-%m-%dT%H:%M}", "--json"],
                "CLI: usage-exporter --help": [script, "--help"]}
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, command in commands.items():
            began, began_cpu = time.perf_counter(), children_cpu()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            seconds[label].append(time.perf_counter() - began)
            cpu[label].append(children_cpu() - began_cpu)
    for label in commands:
        report(f"{label:<47}", seconds[label], cpu[label])


if __name__ == "__main__":
    main()
