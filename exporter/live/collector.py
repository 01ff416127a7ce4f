"""The scrape path: a prometheus-client Collector that renders cached site states, nothing more.

No database access, no polars: ``collect()`` only walks the immutable tuples the refreshers
published, so a scrape costs microseconds per series and never blocks on a refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter import __version__
from exporter.live.state import SiteState
from exporter.metrics import (
    EXTRA_FAMILIES, FAMILIES, HOST_DISABLED, HOST_DISABLED_HELP, HOST_DISABLED_LABELS, LABELS, PREFIX, ExtraFamily,
)

SELF_HELP = {
    "up": "1 if the last refresh of the site's databases succeeded, else 0 (last good values are still served).",
    "last_refresh": "Unix time of the last successful refresh: the moment (its `now`) the served usage values describe.",
    "duration": "Seconds the last refresh attempt took.",
    "errors": "Failed refreshes by kind of failure.",
    "held": "Counter series currently held at their published value because a recomputation was lower.",
    "build": "Build information of the usage exporter (always 1).",
}


class UsageCollector:
    """Yields the usage families (exporter.metrics) and self-metrics for every site.

    ``states`` returns the current SiteState of each site; it must be cheap (a reference read).
    ``declared``: the extra series families to render (exporter.metrics.EXTRA_FAMILIES).
    """

    def __init__(self, states: Callable[[], Iterable[SiteState]], *, version: str = __version__,
                 declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> None:
        self._states = states
        self._version = version
        self._declared = declared

    def describe(self) -> list[Metric]:
        """Nothing: keeps registration from calling collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        states = sorted(self._states(), key=lambda state: state.site)
        yield from usage_families(states)
        yield from extra_families(states, self._declared)
        yield from self_metric_families(states, self._version)


def usage_families(states: list[SiteState]) -> Iterator[Metric]:
    """Gauge + counter family per resource; sites without a good refresh yet contribute nothing."""
    for family in FAMILIES:
        gauge = GaugeMetricFamily(family.gauge, f"{family.help}.", labels=LABELS, unit=family.gauge_unit)
        counter = CounterMetricFamily(
            family.counter, f"{family.help} integrated over time (resource-seconds since the site's history_start).",
            labels=LABELS, unit=family.counter_unit)
        for state in states:
            if state.usage is None:
                continue
            for (node_type, pool, leaf), value in state.usage.gauges.get(family.resource, ()):
                gauge.add_metric((state.site, node_type, pool, leaf), value)
            for (node_type, pool, leaf), value in state.usage.counters.get(family.resource, ()):
                counter.add_metric((state.site, node_type, pool, leaf), value)
        yield gauge
        yield counter
    disabled = GaugeMetricFamily(HOST_DISABLED, HOST_DISABLED_HELP, labels=HOST_DISABLED_LABELS)
    for state in states:
        for node_type, value in state.usage.disabled if state.usage is not None else ():
            disabled.add_metric((state.site, node_type), value)
    yield disabled


def extra_families(states: list[SiteState], declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> Iterator[Metric]:
    """Each declared extra family some site has values for (exporter.metrics), from cached rows."""
    for family in declared:
        rows = [row for state in states if state.usage is not None
                for row in state.usage.families.get(family.name, ())]
        if not rows:
            continue
        kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
        metric = kind(family.name, family.help, labels=family.labels, unit=family.unit)
        for labels, value in rows:
            metric.add_metric(labels, value)
        yield metric


def self_metric_families(states: list[SiteState], version: str) -> Iterator[Metric]:
    """Health of each site's refresh, as metrics (a failing site never fails the scrape)."""
    up = GaugeMetricFamily(f"{PREFIX}_up", SELF_HELP["up"], labels=("site",))
    last = GaugeMetricFamily(f"{PREFIX}_last_refresh_timestamp_seconds", SELF_HELP["last_refresh"],
                             labels=("site",), unit="seconds")
    duration = GaugeMetricFamily(f"{PREFIX}_refresh_duration_seconds", SELF_HELP["duration"],
                                 labels=("site",), unit="seconds")
    errors = CounterMetricFamily(f"{PREFIX}_refresh_errors", SELF_HELP["errors"], labels=("site", "kind"))
    held = GaugeMetricFamily(f"{PREFIX}_counters_held", SELF_HELP["held"], labels=("site",))
    for state in states:
        up.add_metric((state.site,), 1.0 if state.up else 0.0)
        if state.last_success is not None:
            last.add_metric((state.site,), state.last_success)
        if state.duration is not None:
            duration.add_metric((state.site,), state.duration)
        for kind, count in state.errors:
            errors.add_metric((state.site, kind), count)
        held.add_metric((state.site,), state.usage.counters_held if state.usage else 0)
    build = GaugeMetricFamily(f"{PREFIX}_exporter_build_info", SELF_HELP["build"], labels=("version",))
    build.add_metric((version,), 1.0)
    yield from (up, last, duration, errors, held, build)
