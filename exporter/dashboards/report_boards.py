"""The node-hours report (tables over the time picker's range) and the live exporter's health."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, dashboard
from grafana_foundation_sdk.models import dashboard as dm

from exporter.dashboards import promql as q
from exporter.dashboards.layout import datasource_variable, label_variable, new_dashboard, usage_variables
from exporter.dashboards.widgets import table_panel, target, timeseries_panel, transformation

RANGE = "$__range"  # the report period is the time picker's range, evaluated at its end
KPI_LEVELS = {"total": q.ALL, "reservable": q.RESERVABLE, "committed": q.COMMITTED}


def node_hours() -> dashboard.Dashboard:
    by_leaf = (table_panel(1, "Resource-hours by site, node type, pool and state",
                           "Resource-seconds counter at the end of the range minus at its start, / 3600. With "
                           "resource = Nodes these are node-hours.", (14, 24, 0, 0))
               .with_target(target("A", q.counter_hours(q.ALL, RANGE, "site, node_type, pool, state"),
                                   instant=True, table_format=True))
               .with_transformation(transformation("organize", {
                   "excludeByName": {"Time": True},
                   "indexByName": {"site": 0, "node_type": 1, "pool": 2, "state": 3, "Value": 4},
                   "renameByName": {"Value": "hours"}}))
               .sort_by([common.TableSortByFieldState().display_name("site").desc(False)]))
    kpi = table_panel(2, "KPI summary by site", "Total, reservable and committed (idle + active + stopped) "
                      "resource-hours over the range; utilization = committed / reservable.", (8, 24, 0, 14))
    for name, level in KPI_LEVELS.items():
        kpi = kpi.with_target(target(name, q.counter_hours(level, RANGE, "site"), instant=True, table_format=True))
    kpi = (kpi.with_target(target("utilization", q.hours_ratio(q.COMMITTED, q.RESERVABLE, RANGE, "site"),
                                  instant=True, table_format=True))
           .with_transformation(transformation("merge", {}))
           .with_transformation(transformation("organize", {
               "excludeByName": {"Time": True},
               "renameByName": {**{f"Value #{name}": f"{name} hours" for name in KPI_LEVELS},
                                "Value #utilization": "utilization"}}))
           .override_by_name("utilization", [dm.DynamicConfigValue(id_val="unit", value="percentunit")]))
    return new_dashboard("openstack-usage-node-hours", "OpenStack usage: node-hours report",
                         "Resource-hours per state, site and node type over the chosen time range (KPI report).",
                         since="now-30d", variables=usage_variables(), panels=[by_leaf, kpi])


def _health(panel_id: int, title: str, description: str, grid, expr: str, legend: str, *, unit: str = "short",
            by_name: bool = True, bounded: bool = False):
    return (timeseries_panel(panel_id, title, description, grid, unit=unit, by_name=by_name, bounded=bounded)
            .with_target(target("A", expr, legend)))


def exporter_health(job: str) -> dashboard.Dashboard:
    """Self-metrics of the live exporter (never backfilled), for the configured scrape ``job``."""
    scoped = 'job="$job",site=~"$site"'
    panels = [
        _health(1, "Scrape target up", "Prometheus' own up series for the exporter's scrape job.", (7, 12, 0, 0),
                'up{job="$job"}', "{{instance}}", by_name=False, bounded=True),
        _health(2, "Database refresh up", "openstack_usage_up: 1 if the site's last database refresh succeeded "
                "(the exporter then serves fresh values), 0 if it serves the last good values.", (7, 12, 12, 0),
                f"max by (site) (openstack_usage_up{{{scoped}}})", "{{site}}", bounded=True),
        _health(3, "Refresh duration", "Seconds the last database refresh took, per site.", (7, 12, 0, 7),
                f"max by (site) (openstack_usage_refresh_duration_seconds{{{scoped}}})", "{{site}}", unit="s"),
        _health(4, "Last refresh age", "Seconds since the last successful refresh, per site.", (7, 12, 12, 7),
                f"time() - max by (site) (openstack_usage_last_refresh_timestamp_seconds{{{scoped}}})", "{{site}}",
                unit="s"),
        _health(5, "Refresh errors", "Failed refreshes by site and kind (connection_error, auth_error, "
                "permission_denied, missing, timeout, query_error) per interval.", (7, 12, 0, 14),
                f"sum by (site, kind) (increase(openstack_usage_refresh_errors_total{{{scoped}}}[$__rate_interval]))",
                "{{site}} {{kind}}"),
        _health(6, "Scrape duration", "How long Prometheus takes to scrape the exporter (served from cache).",
                (7, 12, 12, 14), 'scrape_duration_seconds{job="$job"}', "{{instance}}", unit="s", by_name=False),
    ]
    job_variable = dashboard.ConstantVariable("job").label("Job").value(job)  # hidden: constants always are
    return new_dashboard("openstack-usage-exporter-health", "OpenStack usage: exporter health",
                         "Is the live exporter up, how long its refreshes take, how old its data is, and errors.",
                         since="now-6h", variables=[datasource_variable(),
                                                    label_variable("site", "Site", "label_values(openstack_usage_up, site)"),
                                                    job_variable], panels=panels)
