"""A site's present usage from its live databases, through the same engine code as ``reconstruct``.

tables (incremental cache of the declared tables) -> ``reconstruct.spans_from_tables`` (snapshot
time = now) -> ``timeline.levels_at(spans, now)`` for the gauges and
``timeline.counters_until(spans, origin=history_start, at=now)`` for the counters. So the value
served at t is what ``reconstruct`` computes for t from a snapshot of the same databases taken at
t, and the counters continue the backfill (Σ value × step from history_start) without a jump.
The booked-ahead gauges come from the same reconstruction's bookings (exporter.reconstruct.bookings)
at T = now, leases that start in the future included.

History is integrated once per full reload: the full computation at a reload fixes the counters
at that moment C (the cut-off); later refreshes recompute only the spans that can reach past C
(``exporter.live.recent``) and add their integral over [C, now). A change made after C to time
before C (a backdated row) is therefore picked up at the next full reload.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import replace
from collections.abc import Mapping
from pathlib import Path

import polars as pl
from sqlalchemy.engine import Engine

from exporter.config import SiteConfig
from exporter.db import open_engine
from exporter.live.recent import recent_tables
from exporter.live import warm, warmset
from exporter.live.render import USAGE_SCHEMA
from exporter.live.state import RenderedUsage, Usage
from exporter.reconstruct import device_family
from exporter.live.tables import TableCache
from exporter.adapters import nova_services
from exporter.adapters.declared import SourceTable
from exporter.adapters.registry import read_with_parent, site_span_tables
from exporter.columns import LEVEL_TOTAL, UNKNOWN_NODE_TYPE

log = logging.getLogger("exporter.live")


# reconstruct cuts every span known to continue past the snapshot at the snapshot time (nothing is
# known after it), so at the snapshot instant itself those spans are already over ([start, end)).
# The gauges therefore read the levels just before ``now`` (their left limit); counters integrate
# [history_start, now), which the cut does not change.
JUST_BEFORE = dt.timedelta(microseconds=1)
# The backfill sums value × step per grid cell; the exporter integrates spans directly (and adds
# increments to the counters at the last full reload). Both are exact up to float rounding, but a
# flat counter served 1 ulp below its last backfilled sample is a *counter reset* to Prometheus
# (increase() then counts the whole counter again). Leaves are differences of levels (available =
# reservable − committed − maintenance), so their rounding error scales with the node type's
# total, not with the leaf. Counters are therefore published 2^-40 (~1e-12) × that total high:
# far above summation noise, far below anything a dashboard shows.
FLOAT_NOISE_GUARD = 2.0 ** -40


def guarded(counters: pl.DataFrame) -> pl.DataFrame:
    """Counters raised by FLOAT_NOISE_GUARD × Σ|counters| of their (node_type, resource)."""
    scale = pl.col("value").abs().sum().over("node_type", "resource")
    return counters.with_columns(pl.col("value") + scale * FLOAT_NOISE_GUARD)


def guarded_devices(families: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The devices counter raised like ``guarded`` (per machine_name): the backfill sums hourly
    means, live integrates spans, and a series that stopped growing must not read as a reset."""
    if device_family.COUNTER not in families:
        return families
    scale = pl.col("value").abs().sum().over("machine_name")
    counter = families[device_family.COUNTER].with_columns(pl.col("value") + scale * FLOAT_NOISE_GUARD)
    return {**families, device_family.COUNTER: counter}


def usage_from_tables(tables: Mapping[str, pl.DataFrame], *, site: SiteConfig, now: dt.datetime,
                      since: Usage | None = None) -> Usage:
    """Gauges at ``now`` (left limit) and counters over [history_start, now) (USAGE_SCHEMA frames).

    With ``since`` (an earlier result at C = ``since.at``), ``tables`` may hold only the rows that
    can reach past C (``recent_tables``): counters are then ``since.counters`` + ∫ over [C, now).
    """
    from exporter.explain import instant, overlapping
    from exporter.reconstruct.bookings import booked_ahead, booked_ahead_families
    from exporter.reconstruct.pipeline import spans_from_tables
    from exporter.reconstruct.rulesfile import site_policy
    from exporter.reconstruct.timeline import counters_until, levels_at

    # The same rules, priority and inference as the backfill, so the present continues the past.
    span_set = spans_from_tables({name: frame.lazy() for name, frame in tables.items()}, site=site.name,
                                 snapshot_time=now, maintenance_projects=site.maintenance_projects,
                                 **site_policy(site))
    spans = _collected(span_set.spans)
    origin = since.at if since is not None else site.history_start
    counters = _usage_frame(counters_until(spans, origin=origin, at=now))
    gauges = _usage_frame(levels_at(spans, now - JUST_BEFORE))
    present = overlapping(spans.lazy(), instant(now - JUST_BEFORE)).collect()
    hosts = present.filter(pl.col("level") == LEVEL_TOTAL).with_columns(
        pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE))
    return Usage(
        at=now,
        gauges=gauges,
        counters=counters if since is None else summed(since.counters, counters),
        spans=present,  # what /explain lists for the present: the spans the gauges were summed from
        device_spans=None if span_set.devices is None else overlapping(
            span_set.devices.lazy(), instant(now - JUST_BEFORE)).collect(),  # the same for the devices family
        # the booked-ahead lens reads the bookings (planned windows, future ones included), not
        # the spans, which end at the snapshot: the same rule as the backfill, at T = now
        families=booked_ahead_families(booked_ahead(
            span_set.bookings, [now], node_types=gauges.select(pl.lit(site.name).alias("site"), "node_type")))
        # an edge site's devices family, from the device spans by the same rules as the backfill
        | ({} if span_set.devices is None else device_family.live_frames(
            span_set.devices, at=now, gauge_at=now - JUST_BEFORE, origin=origin,
            since=dict(since.families) if since is not None else None)),
        disabled=nova_services.disabled_by_node_type({name: frame.lazy() for name, frame in tables.items()}, hosts),
    )


def summed(base: pl.DataFrame, increment: pl.DataFrame) -> pl.DataFrame:
    """Per key, base + increment (a key missing on one side counts 0 there)."""
    keys = [name for name in USAGE_SCHEMA if name != "value"]
    joined = base.join(increment, on=keys, how="full", coalesce=True, suffix="_increment")
    return joined.select(*keys, (pl.col("value").fill_null(0.0) + pl.col("value_increment").fill_null(0.0))
                         .alias("value"))


def _collected(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def _usage_frame(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return _collected(frame).select(list(USAGE_SCHEMA)).cast(USAGE_SCHEMA)


def live_sources(kind: str = "baremetal") -> tuple[SourceTable, ...]:
    """The declared tables that feed spans: what the live exporter reads on every refresh (an edge
    site: Nova and the host tables optional, exporter.adapters.registry.site_tables).

    Archive-only sources (declared ``feeds_spans=False``: audit trigger tables that can hold every
    change ever made, cell0, the legacy usage cache) would cost time and change no value;
    ``extract`` still copies them.
    """
    return site_span_tables(kind)


class LiveSite:
    """``compute(now)`` for one configured site: refresh the table cache, run the engine.

    Engines are read-only (``open_engine`` default) with the site's query timeout as the driver
    read timeout. ``timings`` holds the seconds of the last call's stages (read, compute).
    With ``state_dir`` the state is kept there for a warm start (exporter.live.warm): ``warm_published``
    is what to serve at once, the first call continues from the saved set, ``persist`` saves after
    each published refresh.
    """

    def __init__(self, site: SiteConfig, *, full_reload_interval: float = 3600.0,
                 sources: tuple[SourceTable, ...] | None = None, state_dir: Path | None = None) -> None:
        self.site = site
        sources = sources if sources is not None else live_sources(site.kind)
        self._engines = site_engines(site, sources)
        self.tables = TableCache({s.name: self._engines[site.url_for(s.schema)] for s in sources}, sources,
                                 full_reload_interval=full_reload_interval, query_timeout=site.query_timeout,
                                 children=read_with_parent(sources))
        self.timings: dict[str, float] = {}
        self._cutoff_usage: Usage | None = None  # the full computation at the last full reload
        self.state_dir = state_dir
        self._key = warm.state_key(site) if state_dir is not None else ""
        self._restore = state_dir is not None  # the first call continues from the saved set, if any
        self._saved_files: dict[str, tuple[int, str]] = {}
        self._persist_failed = False
        self._published: dict[str, pl.DataFrame] | None = None  # the families last returned (counters held)

    def warm_published(self) -> RenderedUsage | None:
        """The values published before the last stop, to serve before the first refresh (None: cold)."""
        return warm.published(self.state_dir, self._key) if self.state_dir is not None else None

    def __call__(self, now: dt.datetime) -> Usage:
        started = time.perf_counter()
        if self._restore:
            self._restore = False
            saved = self.warm_published()
            saved_set = warmset.load(self.state_dir, self._key, saved) if saved is not None else None
            if saved_set is not None:
                self.tables.restore(saved_set.cache, now)
                self._cutoff_usage = saved_set.cutoff
                self._published = saved_set.families
        tables = self.tables.refresh(now)
        read_done = time.perf_counter()
        if self.tables.last_mode == "full" or self._cutoff_usage is None:
            usage = usage_from_tables(tables, site=self.site, now=now)
            self._cutoff_usage = usage
        else:
            cutoff = self._cutoff_usage
            usage = usage_from_tables(recent_tables(tables, cutoff=cutoff.at), site=self.site, now=now,
                                      since=cutoff)
        self.timings = {"read": read_done - started, "compute": time.perf_counter() - read_done}
        families, devices_held = device_family.held(self._published, guarded_devices(dict(usage.families)), at=now)
        self._published = families
        return replace(usage, counters=guarded(usage.counters), families=families, families_held=devices_held)

    def persist(self, published: RenderedUsage) -> None:
        """Save the state behind ``published`` (the values just served) for a warm start; a failure
        is logged (once until it works again) and changes nothing served."""
        if self.state_dir is None or self._cutoff_usage is None:
            return
        try:
            self._saved_files = warmset.save(self.state_dir, self._key, published, self._cutoff_usage,
                                             self.tables.saved(), self._saved_files)
        except Exception as err:  # noqa: BLE001 - a full disk must not stop the exporter from serving
            if not self._persist_failed:
                log.warning("site %s: cannot save the live state in %s (%s); a restart will start cold",
                            self.site.name, self.state_dir, str(err).splitlines()[0][:200] if str(err) else err)
            self._persist_failed = True
            return
        self._persist_failed = False

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


def site_engines(site: SiteConfig, sources: tuple[SourceTable, ...]) -> dict[str, Engine]:
    """One read-only engine per distinct URL the site's sources live at."""
    urls = sorted({site.url_for(source.schema) for source in sources})
    timeout = max(1.0, site.query_timeout)
    return {url: open_engine(url, site.databases, connect_timeout=min(10.0, timeout), read_timeout=timeout)
            for url in urls}
