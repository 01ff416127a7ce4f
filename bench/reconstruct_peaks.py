"""Peak memory and busy cores per stretch of one reconstruction: which stage holds the run's peak
RSS, and where fewer than two cores are busy (issue #19).

    .venv/bin/python bench/reconstruct_peaks.py SNAPSHOT_DIR START END OUT_DIR [--timeline SECONDS]
    # e.g. the site reconstruct_speed.py makes:
    .venv/bin/python bench/reconstruct_peaks.py /work/rs500/site-h500-y10-s1/data/bench/snap \\
        2016-01-01T00:00:00 2026-01-01T00:00:00 /tmp/peaks-out

Runs ``reconstruct_to_directory`` in this process (the tree on ``PYTHONPATH`` first, so an older
checkout can be measured with this script) with the pipeline's stage functions wrapped: each call's
start and end is a mark (a call in another thread than the main one is marked ``[side]``). A thread
reads VmRSS every 10 ms and every thread's CPU time (/proc/self/task/*/schedstat) every 20 ms; a
thread that ends between two reads is gone from /proc/self/task at the second, so its last <= 20 ms
of CPU is not counted. Per stretch between two marks it prints the highest RSS sample, the
process's ru_maxrss at the stretch's end (exact, where a sample can miss a short spike), the CPU
used, the cores busy on average, and the replay: the stretch's wall time on two idle cores,
estimated per sample as max(CPU ÷ 2, the busiest thread's CPU), so that it reads about the same on
a loaded host (it assumes the threads' CPU in each sample could have run side by side), and the
idle core-seconds in it (replay − CPU ÷ 2). With ``--timeline SECONDS`` it also prints the cores
busy in the replay per bucket of that many seconds. One run is one reading: runs of one revision
move by ~50 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import threading
import time
from pathlib import Path

from bench_reconstruct import _current_rss_mb
from exporter import layout
from exporter.reconstruct import audit as auditing
from exporter.reconstruct import audit_timeline, bookings, knowledge, leadtime, outputs, span_stage
from exporter.reconstruct import pipeline as stages
from exporter.reconstruct.output_set import OutputSet

WRAPPED = ((layout, "load_snapshot", "load snapshot"), (stages, "spans_from_tables", "spans"),
           (span_stage, "_levels", "spans: levels"), (span_stage, "_canonical", "spans: canonical"),
           (knowledge, "with_knowledge_times", "spans: knowledge"), (leadtime, "lease_leadtimes", "lead times"),
           (auditing, "span_audit", "spans: span audit"),
           (stages, "timeline_grid", "grid"),
           (audit_timeline, "timeline_accounting", "audit"), (bookings, "booked_ahead", "lens"),
           (bookings, "booked_ahead_families", "lens families"), (OutputSet, "wait", "wait for writes"),
           (OutputSet, "publish", "publish"),
           (outputs, "write_span_files", "write spans"), (outputs, "write_timeline", "write timeline"),
           (outputs, "write_families", "write families"), (outputs, "write_closing_files", "write closing"))
CPU_EVERY = 0.02


def max_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def thread_cpu() -> dict[int, float]:
    """CPU seconds so far of each thread of this process (schedstat: nanoseconds on a CPU)."""
    times = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                times[int(tid)] = int(stat.read().split()[0]) / 1e9
        except (OSError, ValueError):  # the thread ended meanwhile
            pass
    return times


def replay(steps: list[tuple[float, float, float, float]]) -> float:
    """Seconds on two idle cores of the CPU samples (end time, wall, CPU, busiest thread's CPU)."""
    return sum(max(cpu / 2, busiest) for _, _, cpu, busiest in steps)


def main(snapshot: str, start: str, end: str, out: str, bucket: float | None) -> None:
    marks: list[tuple[float, str, int]] = []
    samples: list[tuple[float, int]] = []
    steps: list[tuple[float, float, float, float]] = []  # (end time, wall, CPU, busiest thread's CPU)
    done = threading.Event()
    main_thread = threading.get_ident()

    def wrap(owner: object, name: str, label: str) -> None:
        function = getattr(owner, name)

        def marked(*args, **kwargs):
            where = label if threading.get_ident() == main_thread else f"[side] {label}"
            marks.append((time.perf_counter(), f"{where} >", max_rss_mb()))
            try:
                return function(*args, **kwargs)
            finally:
                marks.append((time.perf_counter(), f"{where} <", max_rss_mb()))
        setattr(owner, name, marked)

    def sample() -> None:
        me = threading.get_native_id()  # this thread's own reads are not the run's
        last, before = time.perf_counter(), thread_cpu()
        while not done.is_set():
            samples.append((time.perf_counter(), _current_rss_mb()))
            time.sleep(0.01)
            now = time.perf_counter()
            if now - last >= CPU_EVERY:
                cpu = thread_cpu()
                used = [cpu[tid] - before.get(tid, 0.0) for tid in cpu if tid != me]
                steps.append((now, now - last, sum(used), max(used, default=0.0)))
                last, before = now, cpu

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
    time.sleep(0.05)
    began = time.perf_counter()
    marks.append((began, "begin", max_rss_mb()))
    stages.reconstruct_to_directory(Path(snapshot), stages.ReconstructOptions(
        site="bench", start=dt.datetime.fromisoformat(start), snapshot_time=dt.datetime.fromisoformat(end)), Path(out))
    marks.append((time.perf_counter(), "end", max_rss_mb()))
    time.sleep(0.05)
    done.set()
    sampler.join()
    marks.sort()
    print(f"{'from s':>7} {'to s':>7}  {'stretch':<52} {'sampled peak':>12} {'ru_maxrss':>9} "
          f"{'CPU s':>6} {'cores':>5} {'replay s':>8} {'idle':>5}")
    for (a, first, _), (b, second, max_at_end) in zip(marks, marks[1:]):
        inside = [rss for t, rss in samples if a <= t <= b]
        within = [step for step in steps if a < step[0] <= b]
        cpu = sum(step[2] for step in within)
        print(f"{a - began:7.2f} {b - began:7.2f}  {first + ' .. ' + second:<52} "
              f"{max(inside, default=0):>9} MB {max_at_end:>6} MB {cpu:6.2f} {cpu / max(b - a, 1e-9):5.2f} "
              f"{replay(within):8.2f} {replay(within) - cpu / 2:5.2f}")
    within = [step for step in steps if began < step[0] <= marks[-1][0]]
    cpu = sum(step[2] for step in within)
    print(f"whole run: {marks[-1][0] - began:.2f} s wall, {cpu:.2f} s CPU ({cpu / (marks[-1][0] - began):.2f} cores), "
          f"replay {replay(within):.2f} s; peak RSS (ru_maxrss): {max_rss_mb()} MB; load {os.getloadavg()[0]:.1f}")
    if bucket:
        print(f"\ncores busy in the replay (CPU ÷ replay), per {bucket:g} s of the run (its own wall, from the start)")
        for k in range(int((marks[-1][0] - began) / bucket) + 1):
            part = [step for step in within if began + k * bucket < step[0] <= began + (k + 1) * bucket]
            cores = sum(step[2] for step in part) / max(replay(part), 1e-9)
            print(f"{k * bucket:7.2f}  {cores:4.2f}  " + "#" * round(20 * cores))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot")
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("out")
    parser.add_argument("--timeline", type=float, help="also print the cores busy per bucket of this many seconds")
    args = parser.parse_args()
    main(args.snapshot, args.start, args.end, args.out, args.timeline)
