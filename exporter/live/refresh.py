"""Background refresh of one site: compute on an interval, publish, back off on failure.

One thread per site, so a slow or failing site never delays another. A failure keeps the last
good values published (``up`` goes to 0), is counted by kind, and is logged once per kind — not
once per attempt — with one more line when the site recovers.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from exporter.errors import DatabaseError, UsageExporterError
from exporter.live import late
from exporter.live.state import RenderedUsage, SiteState, Usage
from exporter.timeutil import utc_now

log = logging.getLogger("exporter.live")

Compute = Callable[[dt.datetime], Usage]


def unix_seconds(moment: dt.datetime) -> float:
    """Unix time of a naive-UTC datetime."""
    return (moment - dt.datetime(1970, 1, 1)).total_seconds()


def backoff_delay(failures: int, *, interval: float, first: float = 1.0) -> float:
    """Seconds to wait after ``failures`` consecutive failures: 1, 2, 4, ... capped at ``interval``."""
    return min(interval, first * 2 ** max(0, failures - 1))


def failure_of(exc: BaseException, *, site: str) -> DatabaseError:
    """The error as a DatabaseError with a kind and a one-line, password-free message."""
    if isinstance(exc, DatabaseError):
        return exc
    # (by module, not class: SQLAlchemy is imported late, exporter.live.late)
    if isinstance(exc, OSError) or type(exc).__module__.startswith(("sqlalchemy.", "pymysql")):
        return late.classified(exc, what=f"site {site}")
    if isinstance(exc, UsageExporterError):
        return DatabaseError(f"site {site}: {exc}", kind="compute_error")
    return DatabaseError(f"site {site}: computing usage failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''})", kind="compute_error")


class SiteRefresher:
    """Runs ``compute(now)`` every ``interval`` seconds in a daemon thread and publishes a SiteState.

    ``state`` is an immutable snapshot; reading it never blocks on a refresh. ``clock`` gives the
    naive-UTC "now" passed to ``compute`` (injectable for tests).
    """

    def __init__(self, site: str, compute: Compute, *, interval: float,
                 clock: Callable[[], dt.datetime] = utc_now, first_backoff: float = 1.0,
                 published: Callable[[RenderedUsage], None] | None = None) -> None:
        self.site = site
        self._compute = compute
        self._published = published  # called (in the refresh thread) after each successful publish
        self._interval = interval
        self._clock = clock
        self._first_backoff = first_backoff
        self._state = SiteState(site=site)
        self._lock = threading.Lock()  # guards only the reference swap
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._logged_kind: str | None = None
        self.refreshes = 0  # completed attempts, for tests and benchmarks

    @property
    def state(self) -> SiteState:
        return self._state

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"refresh-{self.site}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def publish_warm(self, usage: RenderedUsage) -> None:
        """Serve values saved before a restart until the first refresh (exporter.live.warm): the
        last refresh before the stop succeeded, and its moment is ``last_success``."""
        self._swap(SiteState(site=self.site, usage=usage, up=True, last_success=unix_seconds(usage.at),
                             errors=self._state.errors))

    def refresh_once(self) -> bool:
        """One attempt: compute, publish; returns whether it succeeded."""
        started = time.perf_counter()
        now = self._clock()
        try:
            usage = self._compute(now)
            published = late.rendered(usage, self._state.usage)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a metric and one log line
            self._publish_failure(failure_of(exc, site=self.site), time.perf_counter() - started, exc)
            return False
        self._publish_success(published, time.perf_counter() - started)
        if self._published is not None:
            self._published(published)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ok = self.refresh_once()
            delay = (self._interval - (time.monotonic() - started) if ok
                     else backoff_delay(self._failures, interval=self._interval, first=self._first_backoff))
            self._stop.wait(max(0.0, delay))

    def _publish_success(self, usage, duration: float) -> None:
        old = self._state
        self._swap(SiteState(site=self.site, usage=usage, up=True, last_success=unix_seconds(usage.at),
                             duration=duration, errors=old.errors))
        if self._failures:
            log.info("site %s: refresh recovered after %d failed attempt(s); values are current again",
                     self.site, self._failures)
        self._failures = 0
        self._logged_kind = None
        self.refreshes += 1

    def _publish_failure(self, error: DatabaseError, duration: float, exc: BaseException) -> None:
        old = self._state
        errors = tuple((kind, count + (kind == error.kind)) for kind, count in old.errors)
        self._swap(SiteState(site=self.site, usage=old.usage, up=False, last_success=old.last_success,
                             duration=duration, errors=errors))
        self._failures += 1
        self.refreshes += 1
        if error.kind != self._logged_kind:
            served = (f"serving values from {old.usage.at:%Y-%m-%d %H:%M:%S} UTC" if old.usage
                      else "no values to serve yet")
            log.warning("site %s: refresh failed (%s): %s; %s; retrying with backoff up to %gs",
                        self.site, error.kind, _without_site_prefix(str(error), self.site), served,
                        self._interval)
            self._logged_kind = error.kind
        log.debug("site %s: refresh failure detail", self.site, exc_info=exc)

    def _swap(self, state: SiteState) -> None:
        with self._lock:
            self._state = state


def _without_site_prefix(message: str, site: str) -> str:
    prefix = f"site {site}: "
    return message[len(prefix):] if message.startswith(prefix) else message
