"""Immutable per-site state the live exporter publishes: last good usage plus refresh health.

A refresh builds a new :class:`SiteState` and swaps the reference; scrapes only read it, so a
scrape never waits on a database and never sees a half-updated site.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from exporter.errors import TimelineError
from exporter.metrics import EXTRA_FAMILIES, ExtraFamily, checked_family_frame

USAGE_KEYS = ("node_type", "pool", "state", "resource")
USAGE_SCHEMA: dict[str, pl.DataType] = {
    "node_type": pl.String(),
    "pool": pl.String(),
    "state": pl.String(),
    "resource": pl.String(),
    "value": pl.Float64(),
}
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


@dataclass(frozen=True)
class RenderedUsage:
    """Usage ready for a scrape: per resource, a tuple of ((node_type, pool, state), value)."""

    at: dt.datetime
    gauges: dict[str, tuple[Series, ...]]
    counters: dict[str, tuple[Series, ...]]
    counter_frame: pl.DataFrame  # the published (held) counters, kept for the next hold
    counters_held: int  # series whose computed value fell below what was already published
    gauge_frame: pl.DataFrame | None = None  # the gauges as computed (USAGE_SCHEMA), for /explain
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


def held_counters(previous: pl.DataFrame | None, computed: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Counters that never decrease: per series max(previously published, computed).

    A correction to the past (a row deleted or edited in the database) can lower a recomputed
    integral; publishing it would look like a counter reset to Prometheus, so the published value
    holds until the true value passes it. Series that vanished keep their last value. Returns the
    published frame (USAGE_SCHEMA, sorted by key) and how many series are being held.
    """
    computed = computed.select(list(USAGE_SCHEMA)).cast(USAGE_SCHEMA)
    if previous is None or previous.is_empty():
        return computed.sort(USAGE_KEYS), 0
    joined = previous.join(computed, on=list(USAGE_KEYS), how="full", coalesce=True, suffix="_new")
    held = joined.select(
        *USAGE_KEYS,
        pl.max_horizontal("value", "value_new").alias("value"),
        (pl.col("value_new").is_null() | (pl.col("value_new") < pl.col("value"))).alias("held"),
    )
    return held.select(list(USAGE_SCHEMA)).sort(USAGE_KEYS), int(held["held"].sum())


def series_by_resource(frame: pl.DataFrame) -> dict[str, tuple[Series, ...]]:
    """Group a usage frame into render-ready tuples (one pass; a few hundred rows per site)."""
    out: dict[str, list[Series]] = {}
    ordered = frame.select(list(USAGE_SCHEMA)).sort(USAGE_KEYS)
    for node_type, pool, state, resource, value in ordered.iter_rows():
        out.setdefault(resource, []).append(((node_type, pool, state), value))
    return {resource: tuple(rows) for resource, rows in out.items()}


def rendered(usage: Usage, previous: RenderedUsage | None,
             declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> RenderedUsage:
    """Turn a fresh computation into published values, holding counters that would decrease."""
    counters, n_held = held_counters(previous.counter_frame if previous else None, usage.counters)
    return RenderedUsage(
        at=usage.at,
        gauges=series_by_resource(usage.gauges),
        counters=series_by_resource(counters),
        counter_frame=counters,
        counters_held=n_held,
        gauge_frame=usage.gauges,
        spans=usage.spans,
        device_spans=usage.device_spans,
        families=rendered_families(usage.families, declared),
        disabled=() if usage.disabled is None else tuple(usage.disabled.sort("node_type").iter_rows()),
    )


def rendered_families(frames: Mapping[str, pl.DataFrame],
                      declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> dict[str, tuple]:
    """Validated render-ready rows of each extra family (the same check as the backfill's)."""
    by_name = {family.name: family for family in declared}
    unknown = sorted(set(frames) - set(by_name))
    if unknown:
        raise TimelineError(f"series famil(ies) {', '.join(unknown)} are not declared in exporter.metrics")
    out = {}
    for name, frame in sorted(frames.items()):
        family = by_name[name]
        checked = checked_family_frame(family, frame, whole_seconds=False)
        out[name] = tuple((tuple(row[:-1]), row[-1]) for row in checked.select(*family.labels, "value").iter_rows())
    return out
