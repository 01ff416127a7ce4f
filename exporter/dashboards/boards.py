"""The usage dashboards: one site (states stacked, utilization) and all sites side by side."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from exporter.dashboards import promql as q
from exporter.dashboards.layout import new_dashboard, usage_variables
from exporter.dashboards.links import explain_link, exporter_url_variable
from exporter.dashboards.widgets import (dashed, fixed, total_line, site_overrides, stat_panel, target,
                                         timeseries_panel)
from grafana_foundation_sdk.models import dashboard as dm
from exporter.plot import RESERVABLE_COLOUR, STATE_COLOURS, TOTAL_COLOUR, leaf_name

DAILY = "1d"  # minimum step of the cross-site graphs: each point is the mean over its step
SHARE_COLOURS = {"committed": STATE_COLOURS[("reservable", "idle")],
                 "occupied": STATE_COLOURS[("reservable", "stopped")],
                 "active": STATE_COLOURS[("reservable", "active")]}
SHARE_LEVELS = {"committed": q.COMMITTED, "occupied": q.OCCUPIED, "active": q.ACTIVE}


def explained(panel, ref: str, expr: str, legend: str, level: str, by: str | None = None, *, devices: bool = False):
    """The panel with query ``ref`` and its series' "Explain this point" link; ``level``/``by``
    are the query's level and grouping (a ratio's: its numerator's); ``devices``: the devices family."""
    return panel.with_target(target(ref, expr, legend)).override_by_query(ref, explain_link(level, by, devices=devices))


def site_usage(edge: bool = False) -> dashboard.Dashboard:
    """``edge``: the config has a CHI@Edge site, so its devices row starts open (else collapsed)."""
    reservable = q.gauge(q.RESERVABLE)
    stats = [
        stat_panel(1, "Total capacity", "All pools and states, now.", 0, q.gauge(), unit="short"),
        stat_panel(2, "Reservable pool", "Capacity enrolled in Blazar, now.", 6, reservable, unit="short"),
        stat_panel(3, "Committed / reservable", "Share of the reservable pool held by user leases, now.", 12,
                   q.ratio(q.gauge(q.COMMITTED), reservable), unit="percentunit"),
        stat_panel(4, "Active / reservable", "Share of the reservable pool running instances, now.", 18,
                   q.ratio(q.gauge(q.ACTIVE), reservable), unit="percentunit"),
    ]
    board = new_dashboard(
        "openstack-usage-site", "OpenStack usage: site",
        "Capacity and use of one or more sites, from backfilled history into live data.",
        since="now-10y", variables=[*usage_variables(), exporter_url_variable()],
        panels=[*stats, _states_panel(), _utilization_panel(), *_node_type_panels(), *_lens_panels()])
    row = dashboard.Row("CHI@Edge devices").id(20).grid_pos(dm.GridPos(h=1, w=24, x=0, y=50))
    if not edge:  # collapsed: the panels live inside the row
        for panel in _device_panels():
            row = row.with_panel(panel)
        return board.with_row(row.collapsed(True))
    board = board.with_row(row.collapsed(False))
    for panel in _device_panels():
        board = board.with_panel(panel)
    return board


def _device_panels() -> list:
    """CHI@Edge devices (openstack_usage_devices): by state, and by hardware model (machine_name)."""
    states = timeseries_panel(21, "Devices by state",
                              "CHI@Edge devices: mutually exclusive states stacked; they add up to the devices line. "
                              "A device of a reservation counts as active while any of its containers runs "
                              "(docs/semantics.md \"Devices\").", (9, 12, 0, 51), stacked=True, by_name=False)
    states = explained(states, "A", q.device_gauge(by="pool, state"), "{{pool}} · {{state}}", q.ALL, "pool, state",
                       devices=True)
    states = explained(states, "total", q.device_gauge(), "devices", q.ALL, devices=True)
    for (pool, state), colour in STATE_COLOURS.items():
        states = states.override_by_name(leaf_name(pool, state), [fixed(colour)])
    models = timeseries_panel(22, "Devices by hardware model",
                              "CHI@Edge devices per machine_name capability (raspberrypi4-64, jetson-nano, ...), "
                              "stacked; adds up to the devices line.", (9, 12, 12, 51), stacked=True)
    models = explained(models, "A", q.device_gauge(by="machine_name"), "{{machine_name}}", q.ALL, "machine_name",
                       devices=True)
    models = explained(models, "total", q.device_gauge(), "devices", q.ALL, devices=True)
    return [states.override_by_query("total", total_line(TOTAL_COLOUR)),
            models.override_by_query("total", total_line(TOTAL_COLOUR))]


def _states_panel():
    panel = timeseries_panel(5, "Capacity by state",
                             "Mutually exclusive states stacked; they add up to the total capacity line. The "
                             "reservable line is the Blazar pool (available + maintenance + idle + active + "
                             "stopped of pool reservable).", (11, 24, 0, 4), stacked=True, by_name=False)
    panel = explained(panel, "A", q.gauge(by="pool, state"), "{{pool}} · {{state}}", q.ALL, "pool, state")
    panel = explained(panel, "total", q.gauge(), "total capacity", q.ALL)
    panel = explained(panel, "reservable", q.gauge(q.RESERVABLE), "reservable pool", q.RESERVABLE)
    for (pool, state), colour in STATE_COLOURS.items():
        panel = panel.override_by_name(leaf_name(pool, state), [fixed(colour)])
    return (panel.override_by_query("total", total_line(TOTAL_COLOUR))
            .override_by_query("reservable", total_line(RESERVABLE_COLOUR, dashed=True)))


def _utilization_panel():
    panel = timeseries_panel(6, "Reservable pool utilization",
                             "committed = idle + active + stopped (user leases), occupied = active + stopped "
                             "(instances on reserved hosts), active = running instances; each divided by the "
                             "reservable pool.", (9, 24, 0, 15), by_name=False, percent=True)
    for share, level in SHARE_LEVELS.items():
        panel = explained(panel, share, q.ratio(q.gauge(level), q.gauge(q.RESERVABLE)), share, level)
    for share, colour in SHARE_COLOURS.items():
        panel = panel.override_by_name(share, [fixed(colour)])
    return panel


def _node_type_panels():
    capacity = timeseries_panel(7, "Capacity by node type",
                                "Total capacity per node type, stacked; adds up to the total line.",
                                (9, 12, 0, 24), stacked=True)
    capacity = explained(capacity, "A", q.gauge(by="node_type"), "{{node_type}}", q.ALL, "node_type")
    capacity = explained(capacity, "total", q.gauge(), "total capacity", q.ALL)
    share = timeseries_panel(8, "Committed / reservable by node type",
                             "Per node type: user-lease share of its reservable pool.", (9, 12, 12, 24), bounded=True)
    share = explained(share, "A", q.ratio(q.gauge(q.COMMITTED, "node_type"), q.gauge(q.RESERVABLE, "node_type")),
                      "{{node_type}}", q.COMMITTED, "node_type")
    return [capacity.override_by_query("total", total_line(TOTAL_COLOUR)), share]


def _lens_panels():
    """Booked ahead and lead times: knowledge-time lenses (docs/semantics.md), not explained."""
    booked = timeseries_panel(9, "Booked ahead (as known then)",
                              "Mean capacity committed over the next 1 day / 7 days / 30 days by the non-maintenance "
                              "leases that existed at each time, the chosen node types summed. A lease deleted "
                              "before it started counts while it existed.", (9, 12, 0, 33))
    booked = booked.with_target(target("A", q.booked_ahead(), "next {{horizon}}"))
    lead = timeseries_panel(10, "Lead time of new leases (median and p90)",
                            "Per day of lease creation: requested = start - creation, effective = first instance "
                            "- creation, start_delay = first instance - start; median (p50) and 90th percentile.",
                            (9, 12, 12, 33), unit="s", min_interval="1d")
    for ref, statistic in (("p50", "p50"), ("p90", "p90")):
        lead = lead.with_target(target(ref, q.lead_time(statistic), "{{site}} {{leadtime_type}} " + statistic))
    return [booked, lead.override_by_regexp(".* p90$", dashed())]


def cross_site(colours: dict[str, str]) -> dashboard.Dashboard:
    """Every site in its configured colour (``exporter.colours``); points are daily means. Edge
    sites count devices, not nodes: they have a panel of their own."""
    return new_dashboard(
        "openstack-usage-cross-site", "OpenStack usage: all sites",
        "All sites side by side and summed, with 30-day rolling utilization. Each point is the time-weighted "
        "mean over its step (at least a day), so years of hourly history show the trend, not the noise.",
        since="now-10y", variables=[*usage_variables(), exporter_url_variable()],
        panels=[_by_site(1, "Capacity by site", "Total capacity of each site (daily means), stacked; adds up to "
                         "the all-sites line.", q.ALL, (9, 12, 0, 0), colours),
                _by_site(2, "Committed by site", "Reservable capacity held by user leases (idle + active + "
                         "stopped; daily means), stacked per site; adds up to the all-sites line.", q.COMMITTED,
                         (9, 12, 12, 0), colours),
                _utilization_by_site(colours), _utilization_summed(), _devices_by_site(colours)])


def _devices_by_site(colours: dict[str, str]):
    panel = timeseries_panel(20, "CHI@Edge devices by site",
                             "Devices of each edge site (daily means), stacked; adds up to the all-sites line. "
                             "Edge sites count devices (openstack_usage_devices), not nodes.", (9, 24, 0, 29),
                             stacked=True, min_interval=DAILY)
    panel = explained(panel, "A", q.device_window_mean(by="site"), "{{site}}", q.ALL, "site", devices=True)
    panel = explained(panel, "total", q.device_window_mean(), "all edge sites", q.ALL, devices=True)
    return site_overrides(panel, colours).override_by_query("total", total_line(TOTAL_COLOUR))


def _by_site(panel_id: int, title: str, description: str, level: str, grid, colours: dict[str, str]):
    panel = timeseries_panel(panel_id, title, description, grid, stacked=True, min_interval=DAILY)
    panel = explained(panel, "A", q.window_mean(level, "site"), "{{site}}", level, "site")
    panel = explained(panel, "total", q.window_mean(level), "all sites", level)
    return site_overrides(panel, colours).override_by_query("total", total_line(TOTAL_COLOUR))


def _utilization_by_site(colours: dict[str, str]):
    panel = timeseries_panel(3, "Utilization by site (committed / reservable) with 30-day rolling mean",
                             "Thin line: committed / reservable resource-seconds over each step (daily means). "
                             "Dashed: the same over the last 30 days, from the resource-seconds counters. "
                             "Red dashes: the 80 % target.", (12, 24, 0, 9), percent=True, min_interval=DAILY)
    panel = explained(panel, "A", q.window_ratio(q.COMMITTED, q.RESERVABLE, "$__interval", "site"), "{{site}}",
                      q.COMMITTED, "site")
    panel = explained(panel, "mean", q.window_ratio(q.COMMITTED, q.RESERVABLE, "30d", "site"),
                      "{{site}} 30-day mean", q.COMMITTED, "site")
    return site_overrides(panel, colours).override_by_regexp(".* 30-day mean$", dashed())


def _utilization_summed():
    panel = timeseries_panel(4, "Utilization, all selected sites summed",
                             "Summed committed / summed reservable over the selected sites (daily means), and "
                             "its 30-day mean.", (8, 24, 0, 21), by_name=False, percent=True, min_interval=DAILY)
    panel = explained(panel, "A", q.window_ratio(q.COMMITTED, q.RESERVABLE, "$__interval"), "all sites", q.COMMITTED)
    panel = explained(panel, "mean", q.window_ratio(q.COMMITTED, q.RESERVABLE, "30d"), "all sites 30-day mean",
                      q.COMMITTED)
    return (panel.override_by_name("all sites", [fixed(TOTAL_COLOUR)])
            .override_by_name("all sites 30-day mean", [fixed(RESERVABLE_COLOUR)])
            .override_by_regexp(".* 30-day mean$", dashed()))
