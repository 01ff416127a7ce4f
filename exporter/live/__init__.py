"""Live exporter: the present usage of every site, as the same series as the backfilled history.

Layout (one concept per module):
- ``state``: immutable per-site state (last good usage + health) and counter holding;
- ``collector``: the prometheus-client Collector rendering that state (no DB on the scrape path);
- ``refresh``: one background thread per site computing usage on an interval, with backoff;
- ``tables`` / ``source``: incremental reads of the live databases and the reconstruct engine
  applied to them (the same code as ``reconstruct``);
- ``explain``: ``/explain`` (history from a site's reconstruct output, the present from the kept spans);
- ``server`` / ``pool`` / ``auth``: the HTTP endpoint (landing page, /metrics, /explain, TLS), its bounded
  connection handling, basic auth with per-address throttling;
- ``warm`` / ``warmset``: the state saved after each refresh, served at once after a restart;
- ``late``: the one place that decides what is imported only after the server answers (everything
  that computes: polars, SQLAlchemy, the reconstruct engine), so a restart serves within seconds.

:class:`LiveExporter` wires them; :func:`serve` runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.errors import ConfigError
from exporter.live import late
from exporter.live.collector import UsageCollector
from exporter.live.refresh import Compute, SiteRefresher, utc_now
from exporter.live.server import BasicAuth, MetricsServer, exporter_app
from exporter.live.state import SiteState, Usage
from exporter.live.warm import STATE_DIR

__all__ = ["BasicAuth", "LiveExporter", "SiteState", "Usage", "UsageCollector", "serve", "serve_config",
           "site_computations"]

log = logging.getLogger("exporter.live")


class LiveExporter:
    """Refreshers for some sites + a private registry + the HTTP server.

    ``computations`` maps a site name to (compute function, refresh interval in seconds).
    """

    def __init__(self, computations: Mapping[str, tuple[Compute, float]], *, listen: str = ":9188",
                 tls_cert: str | None = None, tls_key: str | None = None, auth: BasicAuth | None = None,
                 clock=utc_now, first_backoff: float = 1.0, histories: Mapping[str, Path] | None = None) -> None:
        if not computations:
            raise ConfigError("no sites to serve")
        self._computations = [compute for compute, _ in computations.values()]
        self.refreshers = {site: SiteRefresher(site, compute, interval=interval, clock=clock,
                                               first_backoff=first_backoff, published=getattr(compute, "persist", None))
                           for site, (compute, interval) in sorted(computations.items())}
        for site, (compute, _) in computations.items():  # warm start: serve the saved values at once
            saved = getattr(compute, "warm_published", lambda: None)()
            if saved is not None:
                self.refreshers[site].publish_warm(saved)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(UsageCollector(self.states))
        saved = {site: compute.state_dir for site, (compute, _) in computations.items()
                 if getattr(compute, "state_dir", None) is not None}  # /explain of saved values (warm start)
        app = exporter_app(self.registry, sites=list(self.refreshers), auth=auth, states=self.states,
                           explain=late.Explain(self.states, histories, saved).handle)
        self.server = MetricsServer(app, listen, tls_cert=tls_cert, tls_key=tls_key)

    def states(self) -> list[SiteState]:
        return [refresher.state for refresher in self.refreshers.values()]

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> "LiveExporter":
        """Serve (the saved values, if any), then open the sites (exporter.live.late) and refresh them."""
        self.server.start()
        for compute in self._computations:
            getattr(compute, "open", lambda: None)()
        for refresher in self.refreshers.values():
            refresher.start()
        return self

    def stop(self) -> None:
        """Stop serving, end the refresh threads, close database connections."""
        self.server.stop()
        for refresher in self.refreshers.values():
            refresher.stop(timeout=5)
        for compute in self._computations:
            close = getattr(compute, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> "LiveExporter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def site_computations(config: Config, sites: list[str] | None = None, *, full_reload_interval: float = 3600.0,
                      warm_start: bool = True) -> dict[str, tuple[Compute, float]]:
    """The real computation (live DB -> reconstruct engine) for each selected site, opened when the
    exporter starts (exporter.live.late); with ``warm_start`` its state is kept under
    ``<data_dir>/<site>/live-state/`` (exporter.live.warm)."""
    names = sites or sorted(config.site_names)
    return {name: (late.Site(config.site(name), full_reload_interval=full_reload_interval,
                             state_dir=config.data_dir / name / STATE_DIR if warm_start else None),
                   config.site(name).refresh_interval)
            for name in names}


def serve(exporter: LiveExporter, *, ready: Callable[[LiveExporter], None] | None = None) -> None:
    """Start ``exporter``, block until SIGTERM or SIGINT, then stop it cleanly."""
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        exporter.start()
        if ready is not None:
            ready(exporter)
        while not done.wait(1.0):
            pass
        log.info("shutting down")
    finally:
        exporter.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_config(config: Config, *, sites: list[str] | None = None, listen: str = ":9188",
                 tls_cert: str | None = None, tls_key: str | None = None, auth: BasicAuth | None = None,
                 full_reload_interval: float = 3600.0, warm_start: bool = True,
                 ready: Callable[[LiveExporter], None] | None = None) -> None:
    """Serve the live usage of ``sites`` (default: all configured) until SIGTERM/SIGINT."""
    exporter = LiveExporter(site_computations(config, sites, full_reload_interval=full_reload_interval,
                                              warm_start=warm_start),
                            listen=listen, tls_cert=tls_cert, tls_key=tls_key, auth=auth,
                            histories={name: config.site(name).history_dir for name in sites or config.site_names
                                       if config.site(name).history_dir is not None})
    serve(exporter, ready=ready)
