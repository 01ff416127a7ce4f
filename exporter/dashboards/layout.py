"""The frame every dashboard shares: template variables, links, time zone, the shell itself."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm

from exporter.dashboards.widgets import DATASOURCE_NAME, DATASOURCE_UID, TAG, source
from exporter.metrics import FAMILIES, PREFIX

RESOURCE_LABELS = {"nodes": "Nodes", "vcpus": "vCPUs", "memory_bytes": "Memory (bytes)",
                   "disk_bytes": "Disk (bytes)", "gpus": "GPUs"}
LOOKBACKS = ("1h", "2h", "1d")


def resource_stems() -> list[tuple[str, str]]:
    """(label, stem) per metric family: the gauge is ``openstack_usage_<stem>s``, the counter
    ``openstack_usage_<stem>_seconds_total``."""
    return [(RESOURCE_LABELS[family.resource], family.counter.removeprefix(f"{PREFIX}_").removesuffix("_seconds"))
            for family in FAMILIES]


def _option(text: str, value: str, selected: bool) -> dm.VariableOption:
    return dm.VariableOption(text=text, value=value, selected=selected)


def datasource_variable() -> dashboard.DatasourceVariable:
    return (dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .current(_option(DATASOURCE_NAME, DATASOURCE_UID, True)))


def label_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    """A multi-value variable listing a label's values; "All" matches everything (``.*``)."""
    return (dashboard.QueryVariable(name).label(label).datasource(source()).query(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(text=["All"], value=["$__all"], selected=True))
            .sort(dm.VariableSort.ALPHABETICAL_ASC))


def resource_variable() -> dashboard.CustomVariable:
    stems = resource_stems()
    options = [_option(label, stem, index == 0) for index, (label, stem) in enumerate(stems)]
    return (dashboard.CustomVariable("resource").label("Resource")
            .description("Metric family: openstack_usage_<resource>s (gauge) and "
                         "openstack_usage_<resource>_seconds_total (counter)")
            .values(", ".join(f"{label} : {stem}" for label, stem in stems))
            .multi(False).include_all(False).current(options[0]).options(options))


def lookback_variable() -> dashboard.CustomVariable:
    options = [_option(value, value, index == 0) for index, value in enumerate(LOOKBACKS)]
    return (dashboard.CustomVariable("lookback").label("Sample spacing")
            .description("Window of last_over_time: at least the backfill step (1h by default), so sparse "
                         "history and dense live samples both draw continuous lines")
            .values(",".join(LOOKBACKS)).multi(False).include_all(False).current(options[0]).options(options))


def usage_variables() -> list:
    return [datasource_variable(),
            # edge sites have devices and no nodes
            label_variable("site", "Site", 'label_values({__name__=~"openstack_usage_(nodes|devices)"}, site)'),
            label_variable("node_type", "Node type", 'label_values(openstack_usage_nodes{site=~"$site"}, node_type)'),
            resource_variable(), lookback_variable()]


def new_dashboard(uid: str, title: str, description: str, *, since: str, variables: list,
                  panels: list) -> dashboard.Dashboard:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags([TAG]).editable()
             .tooltip(dm.DashboardCursorSync.CROSSHAIR).time(since, "now").timezone("utc").refresh("")
             .version(1).fiscal_year_start_month(0).live_now(False).week_start("")
             .link(dashboard.DashboardLink("OpenStack usage").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
                   .as_dropdown(True).include_vars(True).keep_time(True)))
    for variable in variables:
        board = board.with_variable(variable)
    for panel in panels:
        board = board.with_panel(panel)
    return board
