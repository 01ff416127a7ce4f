"""Immutable per-site state the live exporter publishes: last good usage plus refresh health.

A refresh builds a new :class:`SiteState` and swaps the reference; scrapes only read it, so a
scrape never waits on a database and never sees a half-updated site. Free of polars (the frames
are only carried): a restarted ``serve`` builds these from its saved values before it imports
polars (exporter.live.late); exporter.live.render turns a computation into them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

USAGE_KEYS = ("node_type", "pool", "state", "resource")  # with ``value``: exporter.live.render.USAGE_SCHEMA
# Every kind exporter.db.classify can return, plus failures that are not database errors.
ERROR_KINDS = ("auth_error", "connection_error", "timeout", "permission_denied", "missing", "query_error",
               "compute_error")

Series = tuple[tuple[str, str, str], float]  # ((node_type, pool, state), value)


@dataclass(frozen=True)
class Usage:
    """What one computation returns: gauges (levels at ``at``) and counters (∫ from history start).

    Both frames have columns node_type, pool, state, resource, value (resource in base units;
    counters in resource-seconds).
    """

    at: dt.datetime
    gauges: pl.DataFrame
    counters: pl.DataFrame
    spans: pl.DataFrame | None = None  # the spans behind the gauges (those holding at ``at``), for /explain
    device_spans: pl.DataFrame | None = None  # an edge site's device spans holding at ``at``, for /explain
    # extra series families (exporter.metrics.EXTRA_FAMILIES) by name: their long frames for ``at``
    families: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    disabled: pl.DataFrame | None = None  # node_type, value: hosts with a disabled nova-compute service
    families_held: int = 0  # counter series of ``families`` held by the source (the devices counter)


@dataclass(frozen=True)
class RenderedUsage:
    """Usage ready for a scrape: per resource, a tuple of ((node_type, pool, state), value)."""

    at: dt.datetime
    gauges: dict[str, tuple[Series, ...]]
    counters: dict[str, tuple[Series, ...]]
    counter_frame: pl.DataFrame | None  # the published (held) counters, for the next hold (None: from a saved set)
    counters_held: int  # series whose computed value fell below what was already published
    gauge_frame: pl.DataFrame | None = None  # the gauges as computed (render.USAGE_SCHEMA), for /explain
    spans: pl.DataFrame | None = None  # Usage.spans
    device_spans: pl.DataFrame | None = None  # Usage.device_spans
    # extra family name -> ((label values in the family's label order), value), sorted
    families: dict[str, tuple[tuple[tuple[str, ...], float], ...]] = field(default_factory=dict)
    disabled: tuple[tuple[str, float], ...] = ()  # (node_type, disabled hosts), sorted


@dataclass(frozen=True)
class SiteState:
    """Everything the collector shows for a site; replaced whole, never mutated."""

    site: str
    usage: RenderedUsage | None = None  # last good values (None until the first success)
    up: bool = False
    last_success: float | None = None  # unix time the last good values describe (their `now`)
    duration: float | None = None  # seconds the last refresh attempt took
    errors: tuple[tuple[str, int], ...] = field(default_factory=lambda: tuple((k, 0) for k in ERROR_KINDS))
