"""A computation (Usage, polars frames) -> what the scrapes render (RenderedUsage, tuples).

Counters are held: a published counter never decreases (``held_counters``). The held frame of
the last publish is the base of the next hold; after a restart it is rebuilt from the saved
render-ready counters (``counter_frame``), which are the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.engine import held
from exporter.errors import TimelineError
from exporter.familyframe import checked_family_frame
from exporter.live.state import USAGE_KEYS, RenderedUsage, Series, Usage
from exporter.metrics import EXTRA_FAMILIES, ExtraFamily

USAGE_SCHEMA: dict[str, pl.DataType] = {
    "node_type": pl.String(),
    "pool": pl.String(),
    "state": pl.String(),
    "resource": pl.String(),
    "value": pl.Float64(),
}


def held_counters(previous: pl.DataFrame | None, computed: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The node counters to publish (USAGE_SCHEMA, sorted by key) and how many series are being
    held: the held counter rule (exporter.engine.held) per usage key."""
    return held.held_counters(previous, computed.select(list(USAGE_SCHEMA)).cast(USAGE_SCHEMA), USAGE_KEYS)


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
    counters, n_held = held_counters(counter_frame(previous) if previous else None, usage.counters)
    return RenderedUsage(
        at=usage.at,
        gauges=series_by_resource(usage.gauges),
        counters=series_by_resource(counters),
        counter_frame=counters,
        counters_held=n_held + usage.families_held,  # node series held here, device series by the source
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


def counter_frame(published: RenderedUsage) -> pl.DataFrame:
    """The published counters as a frame (USAGE_SCHEMA, sorted by key): kept, or from the tuples."""
    if published.counter_frame is not None:
        return published.counter_frame
    rows = [(*labels, resource, value) for resource, series in published.counters.items() for labels, value in series]
    return pl.DataFrame(rows, schema=USAGE_SCHEMA, orient="row").sort(USAGE_KEYS)
