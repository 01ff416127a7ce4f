"""Peak memory per stretch of one reconstruction: which stage holds the run's peak RSS (issue #19).

    .venv/bin/python bench/reconstruct_peaks.py SNAPSHOT_DIR START END OUT_DIR
    # e.g. the site reconstruct_speed.py makes:
    .venv/bin/python bench/reconstruct_peaks.py /work/rs500/site-h500-y10-s1/data/bench/snap \\
        2016-01-01T00:00:00 2026-01-01T00:00:00 /tmp/peaks-out

Runs ``reconstruct_to_directory`` in this process (the tree on ``PYTHONPATH`` first, so an older
checkout can be measured with this script) with the pipeline's stage functions wrapped: each call's
start and end is a mark. A thread reads VmRSS every 10 ms; per stretch between two marks it prints
the highest sample and the process's ru_maxrss at the stretch's end (exact, where a sample can miss
a short spike). One run is one reading: runs of one revision move by ~50 MB.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import threading
import time
from pathlib import Path

from bench_reconstruct import _current_rss_mb
from exporter.reconstruct import audit_timeline, bookings
from exporter.reconstruct import pipeline as stages
from exporter.reconstruct.output_set import OutputSet

WRAPPED = ((stages, "spans_from_tables", "spans"), (stages, "timeline_grid", "grid"),
           (audit_timeline, "timeline_accounting", "audit"), (bookings, "booked_ahead", "lens"),
           (bookings, "booked_ahead_families", "lens families"), (OutputSet, "wait", "wait for writes"),
           (OutputSet, "publish", "publish"))


def max_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(snapshot: str, start: str, end: str, out: str) -> None:
    marks: list[tuple[float, str, int]] = []
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def wrap(owner: object, name: str, label: str) -> None:
        function = getattr(owner, name)

        def marked(*args, **kwargs):
            marks.append((time.perf_counter(), f"{label} >", max_rss_mb()))
            try:
                return function(*args, **kwargs)
            finally:
                marks.append((time.perf_counter(), f"{label} <", max_rss_mb()))
        setattr(owner, name, marked)

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), _current_rss_mb()))
            time.sleep(0.01)

    for owner, name, label in WRAPPED:
        wrap(owner, name, label)
    try:  # what the CLI does before a reconstruction, where the revision has it
        from exporter.engine.plans import prefer_in_memory_engine
    except ImportError:
        pass
    else:
        prefer_in_memory_engine()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    marks.append((began, "begin", max_rss_mb()))
    stages.reconstruct_to_directory(Path(snapshot), stages.ReconstructOptions(
        site="bench", start=dt.datetime.fromisoformat(start), snapshot_time=dt.datetime.fromisoformat(end)), Path(out))
    marks.append((time.perf_counter(), "end", max_rss_mb()))
    done.set()
    sampler.join()
    marks.sort()
    print(f"{'from s':>8} {'to s':>8}  {'stretch':<40} {'sampled peak':>12} {'ru_maxrss':>10}")
    for (a, first, _), (b, second, max_at_end) in zip(marks, marks[1:]):
        inside = [rss for t, rss in samples if a <= t <= b]
        if inside:
            print(f"{a - began:8.2f} {b - began:8.2f}  {first + ' .. ' + second:<40} {max(inside):>9} MB {max_at_end:>7} MB")
    print(f"peak RSS (ru_maxrss): {max_rss_mb()} MB")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:5])
