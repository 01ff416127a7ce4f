"""CPU and wall time from reading the timeline to the first window's file written (when backfill
can start its first promtool): the whole timeline checked and summed first, against the first
window computed alone (history.first_window). Alternating in one process; the files compared
(hashed after the timer stops: backfill takes a window's digests once its promtool has started).

    .venv/bin/python bench/bench_first_window.py --workdir /tmp/fw --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_store import synthetic  # noqa: E402

from exporter.backfill.history import history_before_cutoff, history_opening, window_rows  # noqa: E402
from exporter.backfill.openmetrics import sample_prefixes  # noqa: E402
from exporter.backfill.windows import _SpareFiles, _write_window  # noqa: E402
from exporter.layout import OPENMETRICS_DIR  # noqa: E402
from exporter.snapshots import file_sha256  # noqa: E402

HOURS = 1458
HOLDBACK = dt.timedelta(hours=2)


def whole(timeline: Path, out: Path) -> Path:
    history = history_before_cutoff(timeline, holdback=HOLDBACK, job="j", instance="i")
    start, rows = window_rows(history.samples, HOURS)[0]
    return _written(out, history.samples[rows], history.series, start)


def alone(timeline: Path, out: Path) -> Path:
    opened = history_opening(timeline, holdback=HOLDBACK, job="j", instance="i", hours=HOURS)
    start, rows = opened.first
    return _written(out, rows, opened.series, start)


def _written(out: Path, rows, series, start: dt.datetime) -> Path:
    """The first window's file, written as a backfill worker writes it."""
    (out / OPENMETRICS_DIR).mkdir(parents=True, exist_ok=True)
    with _SpareFiles(out / OPENMETRICS_DIR) as spares:
        written = _write_window(out, rows, sample_prefixes(series), start, HOURS, extra=(None, ()), spares=spares)
    return out / written.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-first-", dir=args.workdir))
    try:
        timeline = work / "tl"
        timeline.mkdir()
        synthetic(9, args.years, 5, dt.datetime(2016, 1, 1)).write_parquet(timeline / "timeline.parquet")
        cpu: dict[str, list[float]] = {"whole": [], "alone": []}
        wall: dict[str, list[float]] = {"whole": [], "alone": []}
        digests = set()
        for index in range(args.repeats):
            for name, run in sorted({"whole": whole, "alone": alone}.items(), reverse=index % 2 == 1):
                out = work / name
                shutil.rmtree(out, ignore_errors=True)
                started, ticked = time.perf_counter(), time.process_time()
                written = run(timeline, out)
                cpu[name].append(time.process_time() - ticked)
                wall[name].append(time.perf_counter() - started)
                digests.add(file_sha256(written))
        if len(digests) != 1:
            raise SystemExit(f"the first window's text differs: {sorted(digests)}")
        for name in cpu:
            print(f"{name:6} to the first window written: cpu median {statistics.median(cpu[name]):.3f} s "
                  f"({', '.join(f'{v:.3f}' for v in cpu[name])}), wall median {statistics.median(wall[name]):.3f} s "
                  f"({', '.join(f'{v:.3f}' for v in wall[name])})")
        print(f"alone / whole: cpu {statistics.median(cpu['alone']) / statistics.median(cpu['whole']):.2f}x; "
              "the first window's sha256 equal")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
