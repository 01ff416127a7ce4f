"""What the live exporter loads late: everything that computes, imported on first use.

A restarted ``serve`` answers scrapes with its saved values (exporter.live.warm) as soon as its port
is bound. Most of a start is importing polars, SQLAlchemy, the database drivers and the reconstruct
engine, so the half that serves (this package's ``__init__``, server, pool, auth, collector, state,
refresh, warm, this module) imports only the standard library, click, yaml and prometheus-client
(tests/live/test_live_startup.py holds it to that), and reaches the half that computes only through
the names below. Each imports its module when first called — when the sites open (LiveExporter.start,
right after the server answers), by a refresh, or by the first /explain request — never before.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.config import SiteConfig
from exporter.errors import DatabaseError
from exporter.live import warm
from exporter.live.state import RenderedUsage, SiteState, Usage

if TYPE_CHECKING:
    from exporter.live.source import LiveSite


def rendered(usage: Usage, previous: RenderedUsage | None) -> RenderedUsage:
    """exporter.live.render.rendered: a computation as published values, counters held."""
    from exporter.live.render import rendered as render

    return render(usage, previous)


def classified(exc: BaseException, *, what: str) -> DatabaseError:
    """exporter.db.classify: a database failure as a DatabaseError with a kind."""
    from exporter.db import classify

    return classify(exc, what=what)


class Explain:
    """``handle(query)`` of exporter.live.explain.ExplainEndpoint, built by the first request."""

    def __init__(self, states: Callable[[], Sequence[SiteState]], histories: Mapping[str, Path] | None,
                 saved: Mapping[str, Path] | None = None) -> None:
        self._states, self._histories, self._saved = states, histories, saved
        self._endpoint = None
        self._lock = threading.Lock()

    def handle(self, query: str) -> tuple[str, bytes]:
        with self._lock:
            if self._endpoint is None:
                from exporter.live.explain import ExplainEndpoint

                self._endpoint = ExplainEndpoint(self._states, self._histories, self._saved)
        return self._endpoint.handle(query)


class Site:
    """``compute(now)`` of a configured site: exporter.live.source.LiveSite, built by ``open`` (the
    exporter calls it once its server answers; a bad setting is then a ConfigError that stops it).

    Before that, ``warm_published`` reads the saved values (exporter.live.warm) without it.
    """

    def __init__(self, site: SiteConfig, *, full_reload_interval: float, state_dir: Path | None) -> None:
        self._site, self._full_reload_interval, self.state_dir = site, full_reload_interval, state_dir
        self._live: LiveSite | None = None

    def warm_published(self) -> RenderedUsage | None:
        if self.state_dir is None:
            return None
        return warm.published(self.state_dir, warm.state_key(self._site))

    def open(self) -> LiveSite:
        """The site's LiveSite (its engines and table cache), after checking its rules file."""
        if self._live is None:
            from exporter.live.source import LiveSite
            from exporter.reconstruct.rulesfile import site_policy

            site_policy(self._site)  # a bad rules file: one clear error
            self._live = LiveSite(self._site, full_reload_interval=self._full_reload_interval,
                                  state_dir=self.state_dir)
        return self._live

    def __call__(self, now: dt.datetime) -> Usage:
        return self.open()(now)

    def persist(self, published: RenderedUsage) -> None:
        if self._live is not None:
            self._live.persist(published)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
