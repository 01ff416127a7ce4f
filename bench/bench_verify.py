"""Benchmark: the cost of checking a snapshot against its manifest (sha256 of every table file)
before reconstruct/run use it, next to the whole reconstruction of the same snapshot.

Usage::

    .venv/bin/python bench/bench_verify.py [--workdir /tmp/bench-site] [--runs 5]

Uses (and if needed creates) the 500-host × 10-year site of bench/bench_reconstruct.py. Each
round times, side by side: ``verify_snapshot`` as reconstruct runs it (files hashed in parallel
threads), the same hashing in one thread, and one whole reconstruction (in a child process, as
bench_reconstruct.py does; it includes the check). Files are in the page cache (warm): the
snapshot was just written or read; a cold read adds the disk's sequential read time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    from bench_reconstruct import prepare

    from exporter.snapshots import file_sha256, read_manifest, verify_snapshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-site"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    snapshot, start, end = prepare(args.workdir, 500, 10)
    files = [snapshot / e["file"] for e in read_manifest(snapshot)["tables"].values() if e.get("file")]
    size = sum(f.stat().st_size for f in files)
    parallel, single, whole = [], [], []
    for _ in range(args.runs):
        began = time.perf_counter()
        assert verify_snapshot(snapshot) == []
        parallel.append(time.perf_counter() - began)
        began = time.perf_counter()
        for path in files:
            file_sha256(path)
        single.append(time.perf_counter() - began)
        began = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_reconstruct.py")), "--workdir",
                        str(args.workdir), "--child", str(snapshot), start.isoformat(), end.isoformat()],
                       check=True, capture_output=True)
        whole.append(time.perf_counter() - began)
    verify, one, total = (statistics.median(x) for x in (parallel, single, whole))
    print(f"snapshot {snapshot}: {len(files)} files, {size / 1e6:,.0f} MB")
    print(f"verify_snapshot (parallel): median {verify:.2f} s of {args.runs} ({', '.join(f'{x:.2f}' for x in parallel)}), "
          f"{size / 1e6 / verify:,.0f} MB/s")
    print(f"same hashing, one thread:   median {one:.2f} s ({size / 1e6 / one:,.0f} MB/s)")
    print(f"whole reconstruct (child):  median {total:.2f} s ({', '.join(f'{x:.2f}' for x in whole)}); "
          f"the check is {100 * verify / total:.1f} % of it")


if __name__ == "__main__":
    main()
