"""The dashboards' PromQL, written once: gauge values, counter windows and their ratios.

Why each form (docs/dashboards.md): gauges are read with ``last_over_time(...[$lookback])`` so
sparse hourly history draws continuous lines; ``max without (job, instance)`` keeps a label set
that exists under two job/instance pairs from being counted twice; hours and means over a window
are counter differences (exact at any edges, safe where a leaf decreases), never ``increase()``.
"""

from __future__ import annotations

GAUGE = "openstack_usage_${resource}s"
COUNTER = "openstack_usage_${resource}_seconds_total"
CHOSEN = 'site=~"$site",node_type=~"$node_type"'

# Label filters of the levels the panels show, on top of the chosen sites and node types.
ALL = ""
RESERVABLE = 'pool="reservable"'
COMMITTED = 'pool="reservable",state=~"idle|active|stopped"'
OCCUPIED = 'pool="reservable",state=~"active|stopped"'
ACTIVE = 'pool="reservable",state="active"'


# CHI@Edge devices (exporter.reconstruct.device_family): one family, labelled by machine_name, not node_type.
DEVICE_GAUGE = "openstack_usage_devices"
DEVICE_COUNTER = "openstack_usage_device_seconds_total"
DEVICE_CHOSEN = 'site=~"$site"'


def selector(metric: str, level: str, chosen: str = CHOSEN) -> str:
    return f"{metric}{{{chosen}{',' + level if level else ''}}}"


def _summed(by: str | None, inner: str) -> str:
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def gauge(level: str = ALL, by: str | None = None) -> str:
    """The latest sample of the gauge at each time, summed (by ``by``)."""
    return _summed(by, f"max without (job, instance) (last_over_time({selector(GAUGE, level)}[$lookback]))")


def counter_seconds(level: str, window: str, by: str | None = None) -> str:
    """Resource-seconds accumulated over the ``window`` ending at each time: the counter now minus
    ``window`` ago (a series that did not exist then counts from 0)."""
    now = f"last_over_time({selector(COUNTER, level)}[$lookback])"
    then = f"last_over_time({selector(COUNTER, level)}[$lookback] offset {window})"
    return _summed(by, f"max without (job, instance) ({now} - ({then} or {now} * 0))")


def counter_hours(level: str, window: str, by: str | None = None) -> str:
    return f"{counter_seconds(level, window, by)} / 3600"


def window_mean(level: str, by: str | None = None) -> str:
    """The time-weighted mean of the gauge over each step of the graph (``$__interval``): with the
    panel's minimum interval of a day, long ranges draw as daily (or coarser) means, not samples."""
    return f"{counter_seconds(level, '$__interval', by)} / ($__interval_ms / 1000)"


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator} / {denominator}"


def hours_ratio(numerator_level: str, denominator_level: str, window: str, by: str | None = None) -> str:
    return (f"({counter_hours(numerator_level, window, by)}) / "
            f"({counter_hours(denominator_level, window, by)})")


def window_ratio(numerator_level: str, denominator_level: str, window: str, by: str | None = None) -> str:
    """Σ numerator-seconds / Σ denominator-seconds over ``window``: a time-weighted utilization."""
    return f"{counter_seconds(numerator_level, window, by)} / {counter_seconds(denominator_level, window, by)}"


# The extra families (exporter.metrics.EXTRA_FAMILIES) the site dashboard draws: not explained
# (/explain covers the timeline's series), read the same way as the gauges.
BOOKED_AHEAD = "openstack_usage_booked_ahead_${resource}s"
LEAD_TIME = "openstack_usage_lease_lead_time_seconds"
LEAD_TIME_LOOKBACK = "30d"  # samples are daily, at 00:00 of days on which leases were created


def booked_ahead(by: str = "horizon") -> str:
    """Capacity booked over the next horizon, as known at each time, summed over the chosen node types."""
    return _summed(by, f"max without (job, instance) (last_over_time({selector(BOOKED_AHEAD, '')}[$lookback]))")


def lead_time(statistic: str) -> str:
    """The daily lead-time statistic of the chosen sites' leases (latest day with leases)."""
    inner = f'{LEAD_TIME}{{site=~"$site",statistic="{statistic}"}}[{LEAD_TIME_LOOKBACK}]'
    return f"max without (job, instance) (last_over_time({inner}))"


def device_gauge(level: str = ALL, by: str | None = None) -> str:
    """The devices gauge like :func:`gauge` (the chosen sites; every machine_name)."""
    return _summed(by, f"max without (job, instance) (last_over_time({selector(DEVICE_GAUGE, level, DEVICE_CHOSEN)}"
                       "[$lookback]))")


def device_window_mean(level: str = ALL, by: str | None = None) -> str:
    """Mean number of devices over each step (``$__interval``), from the device-seconds counter."""
    now = f"last_over_time({selector(DEVICE_COUNTER, level, DEVICE_CHOSEN)}[$lookback])"
    then = f"last_over_time({selector(DEVICE_COUNTER, level, DEVICE_CHOSEN)}[$lookback] offset $__interval)"
    return f"{_summed(by, f'max without (job, instance) ({now} - ({then} or {now} * 0))')} / ($__interval_ms / 1000)"
