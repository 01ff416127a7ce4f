"""Backfill vs promtool's floor, and import-vm vs the promtool path (issue #19 items 2 and 6).

    .venv/bin/python bench/bench_store.py                    # 360 series x 1 year (6.3M samples), 3 rounds
    .venv/bin/python bench/bench_store.py --years 3 --rounds 5
    .venv/bin/python bench/bench_store.py --base c965182 --no-import --rounds 3   # before/after backfill

``--base REV`` (or ``--baseline DIR``, a checkout of an earlier commit): that commit's
``backfill`` runs in the same rounds with this venv's interpreter (``PYTHONPATH``), side by side
with this tree's. Every run reports wall and CPU (user+sys of the command and its promtool
children, from ``getrusage(RUSAGE_CHILDREN)``).

Outputs are proven equal without hashing any text in the timed runs: before the rounds, each
revision runs once, untimed, with ``--keep-openmetrics``, and its files must equal the floor's
(written by this tree) byte for byte; every timed run's ``backfill.json`` must then list the same
windows with the same ``samples_sha256`` as its revision's untimed run (``sha256`` for a base
revision older than that field). Else the bench stops: the outputs differ.

One synthetic dense timeline (bench_backfill.synthetic: 9 node types x 8 leaves x 5 resources,
hourly). Each round runs, in rotating order so load changes hit all three alike:

- floor:    promtool alone on the same 1458h window files backfill writes (written once,
            beforehand), one promtool per file, os.cpu_count() in parallel — what promtool needs
            just to parse and write, with the text already on disk;
- backfill: ``usage-exporter backfill TL --out X --blocks --quiet`` (the whole command: read,
            check, write text, promtool, verify, remove text), while a thread polls the peak size
            of the .om files present and another (Phases) the command's own CPU by how many
            promtool children run beside it, when the first one starts and the last one ends;
- import:   ``usage-exporter import-vm TL --url … --quiet`` into a fresh single-node
            victoria-metrics on a free loopback port (start-up not timed; the command's own
            count-back of the samples is).

Prints medians, the ratios backfill/floor and import/backfill, and ``uptime`` before and after.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import filecmp
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime as dt  # noqa: E402

from bench_backfill import synthetic  # noqa: E402
from reconstruct_speed import checkout  # noqa: E402
from exporter.backfill.blocks import backfill  # noqa: E402
from tests.backfill.test_backfill_disk import Poller  # noqa: E402
from tests.support import VictoriaMetricsServer  # noqa: E402

CLI = [sys.executable, "-c", "from exporter.cli import main; main()"]


def children_cpu() -> float:
    """user+sys of every finished child (and its reaped descendants) so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_floor(files: list[Path], work: Path) -> float:
    blocks = work / "floor-blocks"
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(lambda f: subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", "--max-block-duration=1458h",
             str(f), str(blocks / f.stem)], check=True, capture_output=True), files))
    seconds = time.perf_counter() - started
    shutil.rmtree(blocks)
    return seconds


class Phases:
    """Samples a running backfill command every ``interval``: its own CPU (``/proc/PID/stat``
    utime + stime: the command's threads, not its promtool children) and how many promtool
    children run. Says where our CPU goes in wall time: before the first promtool and after the
    last one nothing else runs (the command's start and end are on the critical path), while one
    or two promtools run it shares the cores with them."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.samples, self._stop = pid, interval, [], threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / self._tick
                tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
            except (OSError, IndexError, ValueError):  # the command just ended
                break
            running = sum(self._is_promtool(child) for task in tasks for child in self._children(task))
            self.samples.append((time.perf_counter(), cpu, running))
            time.sleep(self.interval)

    @staticmethod
    def _children(task: Path) -> list[str]:
        try:
            return (task / "children").read_text().split()
        except OSError:  # that thread just ended; the others are still read
            return []

    @staticmethod
    def _is_promtool(pid: str) -> bool:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() == "promtool"
        except OSError:
            return False

    def __enter__(self) -> "Phases":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self, started: float, ended: float) -> dict[str, float]:
        """first/last: when the first promtool was seen and how long before the end the last one
        ended; cpu0/cpu1/cpu2: our CPU while 0, 1, 2+ promtools ran (wall0: how long none ran)."""
        busy = [t for t, _, running in self.samples if running]
        if not busy:
            print("warning: no promtool child seen in /proc (no samples, or no task children files): "
                  "the phase split is empty", file=sys.stderr)
        out = {"first": (busy[0] - started) if busy else 0.0, "last": (ended - busy[-1]) if busy else 0.0,
               "cpu": self.samples[-1][1] if self.samples else 0.0, "cpu0": 0.0, "cpu1": 0.0, "cpu2": 0.0,
               "wall0": 0.0}
        for (t0, cpu0, running), (t1, cpu1, _) in zip(self.samples, self.samples[1:]):
            out[f"cpu{min(running, 2)}"] += cpu1 - cpu0
            out["wall0"] += (t1 - t0) if running == 0 else 0.0
        return out


def run_backfill(timeline: Path, work: Path, source: Path | None = None,
                 kept_like: list[Path] | None = None) -> tuple[float, int, list, dict]:
    """One ``backfill --blocks`` run: wall, peak .om text, the manifest's windows (path, samples,
    digest: window_digest) and the phases. ``kept_like`` (the floor's files): run with
    ``--keep-openmetrics`` and stop unless the files kept equal those byte for byte."""
    root = work / "bf"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    keep = ["--keep-openmetrics"] if kept_like is not None else []
    with Poller(root, interval=0.1) as poller:  # staging is a hidden sibling of --out; 0.1 s: little CPU taken
        started = time.perf_counter()
        command = subprocess.Popen([*CLI, "backfill", str(timeline), "--out", str(root / "out"), "--blocks",
                                    "--quiet", *keep], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                   cwd=source)
        with Phases(command.pid) as phases:
            out, err = command.communicate()
        seconds = time.perf_counter() - started
    if command.returncode != 0:
        raise SystemExit(f"backfill failed ({command.returncode}): {err.decode()[-2000:]}")
    manifest = json.loads((root / "out" / "backfill.json").read_text())
    if kept_like is not None:
        stop_unless_identical(kept_like, root / "out" / "openmetrics")
    shutil.rmtree(root)
    return (seconds, poller.peak, [(f["path"], f["samples"], window_digest(f)) for f in manifest["files"]],
            phases.summary(started, started + seconds))


def window_digest(entry: dict) -> str:
    """A manifest window's samples_sha256, or for a revision older than that field its text's sha256."""
    return entry["samples_sha256"] if "samples_sha256" in entry else entry["sha256"]


def stop_unless_identical(expected: list[Path], directory: Path) -> None:
    """Stop the bench unless ``directory`` holds exactly the files ``expected``, byte for byte."""
    names = sorted(path.name for path in directory.iterdir())
    if names != sorted(path.name for path in expected):
        raise SystemExit(f"the kept files {names} are not the floor's {sorted(p.name for p in expected)}")
    differing = [path.name for path in expected if not filecmp.cmp(path, directory / path.name, shallow=False)]
    if differing:
        raise SystemExit(f"kept files differ from the floor's: {differing}: outputs not identical")


def run_import(timeline: Path) -> float:
    with VictoriaMetricsServer(shutil.which("victoria-metrics")) as vm:
        started = time.perf_counter()
        subprocess.run([*CLI, "import-vm", str(timeline), "--url", vm.url, "--quiet"], check=True, capture_output=True)
        return time.perf_counter() - started


def phase_line(phase: dict[str, float]) -> str:
    return (f"first promtool at {phase['first']:.2f} s, last ended {phase['last']:.2f} s before the end; "
            f"own cpu {phase['cpu']:.2f} s: {phase['cpu0']:.2f} while no promtool ran ({phase['wall0']:.2f} s wall), "
            f"{phase['cpu1']:.2f} beside one, {phase['cpu2']:.2f} beside two")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=float, default=1.0)
    parser.add_argument("--node-types", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--baseline", type=Path, default=None, help="an earlier checkout: its backfill runs too")
    parser.add_argument("--base", default=None, help="an earlier commit (git rev): its backfill runs too")
    parser.add_argument("--no-import", action="store_true", help="skip import-vm")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.workdir))
    try:
        print(f"before: {uptime()}")
        if args.base:
            sha, args.baseline = checkout(args.base, work)
            print(f"baseline: {sha}")
        timeline = work / "tl"
        timeline.mkdir()
        synthetic(args.node_types, args.years, 5, dt.datetime(2016, 1, 1)).write_parquet(timeline / "timeline.parquet")
        written = backfill(timeline, work / "files")  # the text backfill writes, for the floor runs
        files = [work / "files" / f.path for f in written.files]
        text = sum(f.bytes for f in written.files)
        print(f"timeline: {written.series} series, {written.samples:,} samples, {len(files)} window files, "
              f"{text / 1e6:.0f} MB of OpenMetrics text; {os.cpu_count()} cores")
        revisions = {"backfill": None, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        # untimed, each revision's files kept and compared with the floor's: the timed runs then
        # need only agree with these on their manifests' digests
        expected = {name: run_backfill(timeline, work, source, kept_like=files)[2]
                    for name, source in revisions.items()}
        if expected["backfill"] != [(f.path, f.samples, f.samples_sha256) for f in written.files]:
            raise SystemExit("this tree's --keep-openmetrics run lists other windows or digests than its floor files")
        print(f"untimed --keep-openmetrics runs: {', '.join(revisions)} wrote files byte-identical to the floor's")
        runs = {"floor": lambda: run_floor(files, work)}
        for name, source in revisions.items():
            runs[name] = lambda source=source: run_backfill(timeline, work, source)
        if not args.no_import:
            runs["import"] = lambda: run_import(timeline)
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        peaks: dict[str, list[int]] = {"backfill": [], "baseline": []}
        phases: dict[str, list[dict[str, float]]] = {name: [] for name in peaks}
        outputs = 0  # timed backfill runs whose windows (path, samples, digest) equal their revision's expected
        for index in range(args.rounds):
            order = list(runs)
            order = order[index % len(order):] + order[:index % len(order)]
            for name in order:
                before = children_cpu()
                result = runs[name]()
                cpu[name].append(children_cpu() - before)
                if isinstance(result, tuple):
                    result, peak, windows, phase = result
                    peaks[name].append(peak)
                    phases[name].append(phase)
                    if windows != expected[name]:
                        raise SystemExit(f"{name}'s backfill.json differs from its --keep-openmetrics run's: "
                                         "outputs not identical")
                    outputs += 1
                times[name].append(result)
                print(f"  round {index + 1} {name:<8} {times[name][-1]:7.2f} s wall {cpu[name][-1]:7.2f} s cpu  "
                      f"({uptime().split('load average: ')[-1]})", flush=True)
                if name in phases:
                    print(f"           {phase_line(phases[name][-1])}", flush=True)
        median = {name: statistics.median(values) for name, values in times.items()}
        median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
        for name, values in times.items():
            print(f"{name:<8} median {median[name]:7.2f} s wall, {median_cpu[name]:7.2f} s cpu  "
                  f"(wall: {', '.join(f'{v:.2f}' for v in values)}; cpu: {', '.join(f'{v:.2f}' for v in cpu[name])})")
        if outputs:
            print(f"outputs identical: the {outputs} timed backfill runs list the same {len(files)} windows with "
                  "the same digests as their revision's run whose files equal the floor's")
        for name in ("backfill", "baseline"):
            if name in runs:
                print(f"{name} / floor  = {median[name] / median['floor']:.2f}x wall, "
                      f"{median_cpu[name] / median_cpu['floor']:.2f}x cpu (medians)")
        if "import" in runs:
            print(f"import-vm / backfill = {median['import'] / median['backfill']:.2f}x (medians)")
        for name, values in phases.items():
            if values:
                middle = {key: statistics.median(v[key] for v in values) for key in values[0]}
                print(f"{name} phases (medians): {phase_line(middle)}")
        largest = sorted((f.bytes for f in written.files), reverse=True)[:os.cpu_count() or 1]
        for name, values in peaks.items():
            if values:
                print(f"peak .om text during {name}: {max(values) / 1e6:.1f} MB (bound: {sum(largest) / 1e6:.1f} MB "
                      f"= the {len(largest)} largest windows; whole history {text / 1e6:.0f} MB)")
        print(f"after:  {uptime()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
