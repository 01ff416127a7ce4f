"""Where a stage's CPU and memory go, for cost-growth questions (issue #19 item 5): run one
``usage-exporter`` command in this process with probes, write what they saw to a JSON file.

Usage::

    .venv/bin/python bench/cost_probe.py extract OUT.json -- extract --db-url sqlite:///site/main.sqlite \\
        --site growth --out /tmp/x/data --snapshot-id snap --quiet
    .venv/bin/python bench/cost_probe.py reconstruct OUT.json -- reconstruct /tmp/x/data/growth/snap \\
        --site growth --snapshot-time 2026-01-01T00:00:00 --out /tmp/x/out --quiet

- ``extract``: process CPU (all threads) and rows of each table the SQLAlchemy reader copies (the
  reader of SQLite sites), and of the whole command. Run at two sizes: CPU per row that rises
  with the table is a super-linear term.
- ``reconstruct``: RSS sampled every 50 ms; for every progress stage and every call the pipeline
  makes into another module (the first level only, per thread), its wall interval and the highest
  RSS seen inside it. Shows which step holds the peak and how it grows between two sizes.
  (A call's own thread CPU is recorded too, but polars works in its own threads: read wall time.)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import sys
import threading
import time
import types

from exporter.cli import main as cli_main

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def probe_extract(report: dict) -> None:
    from exporter.extract import tablecopy

    copy_slow = tablecopy._copy_table_slow
    tables = report.setdefault("tables", {})

    def timed(view, reason, source, *args, **kwargs):
        began = time.process_time()
        read, facts = copy_slow(view, reason, source, *args, **kwargs)
        tables[source.name] = {"rows": read.rows, "cpu_seconds": round(time.process_time() - began, 3)}
        return read, facts

    tablecopy._copy_table_slow = timed


def probe_reconstruct(report: dict) -> None:
    import polars as pl

    from exporter import progress
    from exporter.reconstruct import pipeline

    samples: list[tuple[float, int]] = []
    calls = report.setdefault("calls", [])
    depth = threading.local()

    def sample() -> None:
        while True:
            samples.append((time.perf_counter(), rss_bytes()))
            time.sleep(0.05)

    def wrapped(name: str, function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            if getattr(depth, "inside", False):
                return function(*args, **kwargs)
            depth.inside = True
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                depth.inside = False
                calls.append({"call": name, "thread": threading.current_thread().name, "t0": began,
                              "t1": time.perf_counter(), "thread_cpu": round(time.thread_time() - cpu, 3)})
        return call

    modules = {m for m in vars(pipeline).values() if isinstance(m, types.ModuleType) and m.__name__.startswith("exporter.")}
    for module in modules:
        for name, function in list(vars(module).items()):
            if inspect.isfunction(function) and function.__module__ == module.__name__:
                setattr(module, name, wrapped(f"{module.__name__.rsplit('.', 1)[-1]}.{name}", function))
    pl.collect_all = wrapped("pl.collect_all", pl.collect_all)
    for name in ("timeline_grid", "check_timeline_size"):
        setattr(pipeline, name, wrapped(f"pipeline.{name}", getattr(pipeline, name)))
    stage = progress.Progress.stage

    @contextlib.contextmanager
    def timed_stage(self, name, total=None):
        began, cpu = time.perf_counter(), time.process_time()
        with stage(self, name, total) as bar:
            yield bar
        calls.append({"call": f"stage: {name}", "thread": "main", "t0": began, "t1": time.perf_counter(),
                      "process_cpu": round(time.process_time() - cpu, 3)})

    progress.Progress.stage = timed_stage
    threading.Thread(target=sample, daemon=True).start()

    def finish() -> None:
        start = min((c["t0"] for c in calls), default=0)
        for c in calls:
            inside = [rss for at, rss in samples if c["t0"] <= at <= c["t1"]]
            c["rss_max_mb"] = max(inside, default=0) >> 20
            c["t0"], c["t1"] = round(c["t0"] - start, 2), round(c["t1"] - start, 2)
        calls.sort(key=lambda c: c["t0"])

    report["_finish"] = finish


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[1] not in ("extract", "reconstruct") or sys.argv[3] != "--":
        raise SystemExit(__doc__)
    kind, out, argv = sys.argv[1], sys.argv[2], sys.argv[4:]
    report: dict = {"argv": argv}
    (probe_extract if kind == "extract" else probe_reconstruct)(report)
    began = time.process_time()
    try:
        cli_main(argv)
    finally:
        report["process_cpu_seconds"] = round(time.process_time() - began, 3)
        report.pop("_finish", lambda: None)()
        with open(out, "w") as sink:
            json.dump(report, sink, indent=1)


if __name__ == "__main__":
    main()
