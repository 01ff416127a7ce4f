"""Work handed to one side thread while the calling thread goes on, without losing a failure.

A ``ThreadPoolExecutor`` block that fails in the calling thread waits for the side jobs and drops
their exceptions unread; ``SideThread`` adds each such exception to the calling thread's as a note
(the CLI prints notes under its error line), so when both fail neither is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait


class SideThread:
    """``with SideThread() as side: job = side.submit(fn, ...)``, like a one-thread ThreadPoolExecutor.

    One worker: jobs run one at a time, in the order submitted, so a job may wait for an earlier
    job's result (span_stage's lead times read the bookings) and never for a later one's."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._jobs: list[Future] = []

    def __enter__(self) -> SideThread:
        return self

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        self._jobs.append(self._pool.submit(fn, *args, **kwargs))
        return self._jobs[-1]

    def __exit__(self, kind, failure, traceback) -> None:
        if failure is not None:
            # the last first: a job reading an earlier one's result never starts to find it cancelled
            for job in reversed(self._jobs):
                job.cancel()
        self._pool.shutdown(wait=True)
        if failure is None:
            return
        noted = [failure]  # not the one a result() call re-raised, nor one a later job re-raised
        for job in self._jobs:
            error = None if job.cancelled() else job.exception()
            if error is not None and not any(error is seen for seen in noted):
                noted.append(error)
                failure.add_note(f"a side thread failed too: {type(error).__name__}: {error}")
