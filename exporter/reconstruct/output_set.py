"""A reconstruction's output set, written while the reconstruction still runs.

Each part of the set (exporter.reconstruct.outputs) is handed over as soon as it is final (the
spans after the spans stage, the timeline after its grid, the families and audit.json at the end)
and one background thread writes the parts in that order while the caller computes the next one:
polars releases the GIL while it encodes and writes parquet, and the stages after the spans leave
a core idle much of the time (BENCHMARKS.md, session 7). The families go to a second thread: made
before the timeline's write ends, they are written beside it, not after it (session 12). The
caller may ``wait()`` for the writes before a step whose memory should not come on top of theirs. Each file is written by the
same function from the same frame as when everything was written at the end, so its bytes do not
depend on when it is written.

Crash safety stays the staged directory's (exporter.publish): ``publish()`` waits for every write
and only then publishes the set. A failed write is raised at the next hand-over or at
``publish()`` (the first failure in hand-over order), inside the staged block, so a full disk is the
same one-line DiskFull and nothing is published. Leaving the block by any exception waits for the
write in flight, drops the queued ones and removes the staging directory. The staging directory is
made at the first hand-over, so a snapshot or configuration error still comes before the output
directory is checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

import polars as pl

from exporter import layout
from exporter.publish import staged_directory
from exporter.reconstruct import outputs
from exporter.reconstruct.timeline import TimelineGrid
from exporter.sidethread import SideThread


class OutputSet:
    """The output set of one reconstruction into ``out_dir``; use as a context manager, hand the
    parts over, then ``publish()``. Leaving the block without ``publish()`` publishes nothing."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._stack = contextlib.ExitStack()
        self._staging: Path | None = None
        self._writer: SideThread | None = None
        self._families_writer: SideThread | None = None
        self._writes: list[Future] = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc_info) -> bool:
        return self._stack.__exit__(*exc_info)

    def spans(self, spans: pl.DataFrame, rejected: pl.DataFrame, leadtimes: pl.DataFrame | None = None) -> None:
        """spans.parquet, rejected.parquet and leadtime.parquet."""
        self._hand_over(outputs.write_span_files, spans, rejected, leadtimes)

    def timeline(self, grid: TimelineGrid) -> None:
        """timeline.parquet, from the grid part by part."""
        self._hand_over(lambda directory: outputs.write_timeline(grid, directory / layout.TIMELINE_FILE))

    def families(self, families: Mapping[str, pl.DataFrame]) -> None:
        """families/<name>.parquet for each family given (may be called more than once)."""
        self._hand_over(outputs.write_families, families, families_thread=True)

    def closing(self, *, audit: dict, devices: pl.DataFrame | None = None, device_timeline: pl.DataFrame | None = None,
                leadtime_timeline: pl.DataFrame | None = None) -> None:
        """audit.json, an edge site's device files and the lead-time timeline."""
        self._hand_over(lambda directory: outputs.write_closing_files(
            directory, audit=audit, devices=devices, device_timeline=device_timeline,
            leadtime_timeline=leadtime_timeline))

    def wait(self) -> None:
        """Wait for the writes handed over so far, raising the first failure's error (on a clean exit:
        :meth:`_settle`; bench/reconstruct_peaks.py marks it)."""
        for write in self._writes:
            write.result()

    def publish(self) -> None:
        """Wait for every write, then publish the set; raises the first failed write's error instead."""
        self._open()
        self._stack.close()

    def _hand_over(self, write: Callable[..., None], *args: object, families_thread: bool = False) -> None:
        self._open()
        self._raise_failed()
        writer = self._families_writer if families_thread else self._writer
        self._writes.append(writer.submit(write, self._staging, *args))

    def _open(self) -> None:
        if self._staging is None:
            self._staging = self._stack.enter_context(
                staged_directory(self.out_dir, owned=outputs.OUTPUT_FILES, stage="reconstruct"))
            # a failed write seen at exit (or Ctrl-C while waiting) cancels the queued ones; a write that
            # failed beside another failure is kept as a note on it (SideThread)
            self._writer = self._stack.enter_context(SideThread())
            self._families_writer = self._stack.enter_context(SideThread())
            self._stack.push(self._settle)  # runs first on exit: before the writers stop and the staging goes

    def _raise_failed(self) -> None:
        for write in self._writes:
            if write.done():
                write.result()

    def _settle(self, kind: type[BaseException] | None, *_: object) -> bool:
        if kind is None:
            self.wait()
        return False
