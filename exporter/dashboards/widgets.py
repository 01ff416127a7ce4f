"""Panel, target and variable builders shared by every dashboard, on Grafana's typed builders
(``grafana-foundation-sdk``). Only looks: the queries come from ``exporter.dashboards.promql``."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm


DATASOURCE_UID = "openstack-usage-prometheus"
DATASOURCE_NAME = "Prometheus (usage)"
TAG = "openstack-usage"
TARGET_UTILIZATION = 0.8
DASHED = {"fill": "dash", "dash": [10, 10]}


def source() -> dm.DataSourceRef:
    return dm.DataSourceRef(type_val="prometheus", uid="${datasource}")


def target(ref: str, expr: str, legend: str = "__auto", *, instant: bool = False,
           table_format: bool = False) -> prometheus.Dataquery:
    query = (prometheus.Dataquery().datasource(source()).ref_id(ref).expr(expr).legend_format(legend)
             .editor_mode(pm.QueryEditorMode.CODE)
             .format(pm.PromQueryFormat.TABLE if table_format else pm.PromQueryFormat.TIME_SERIES))
    return query.instant() if instant else query.range()


def fixed(colour: str) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})


def total_line(colour: str, *, dashed: bool = False) -> list[dm.DynamicConfigValue]:
    """A total line drawn over a stack: not stacked, not filled, thicker."""
    properties = [dm.DynamicConfigValue(id_val="custom.stacking", value={"mode": "none", "group": "A"}),
                  dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                  dm.DynamicConfigValue(id_val="custom.lineWidth", value=2), fixed(colour)]
    if dashed:
        properties.append(dm.DynamicConfigValue(id_val="custom.lineStyle", value=DASHED))
    return properties


def dashed() -> list[dm.DynamicConfigValue]:
    """A derived line (a rolling mean): dashed and thicker, same colour as its series."""
    return [dm.DynamicConfigValue(id_val="custom.lineStyle", value=DASHED),
            dm.DynamicConfigValue(id_val="custom.lineWidth", value=2)]


def site_overrides(panel, colours: dict[str, str]):
    """One fixed colour per site, for the site's line and its derived lines ("<site> 30-day mean")."""
    for site, colour in colours.items():
        panel = panel.override_by_regexp(f"^{site}( .*)?$", [fixed(colour)])
    return panel


def timeseries_panel(panel_id: int, title: str, description: str, grid: tuple[int, int, int, int], *,
                     unit: str = "short", stacked: bool = False, by_name: bool = True, percent: bool = False,
                     min_interval: str | None = None, bounded: bool = False) -> timeseries.Panel:
    """A line (or stacked area) panel with the legend as a table on the right."""
    h, w, x, y = grid
    panel = (timeseries.Panel().id(panel_id).title(title).description(description).datasource(source())
             .grid_pos(dm.GridPos(h=h, w=w, x=x, y=y)).unit("percentunit" if percent else unit)
             .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC_BY_NAME if by_name
                                                       else dm.FieldColorModeId.PALETTE_CLASSIC))
             .draw_style(cm.GraphDrawStyle.LINE).line_width(1).fill_opacity(70 if stacked else 0)
             .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL if stacked else cm.StackingMode.NONE)
                       .group("A"))
             .show_points(cm.VisibilityMode.NEVER).span_nulls(False)
             .line_interpolation(cm.LineInterpolation.STEP_AFTER)
             .legend(common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.RIGHT).calcs(["lastNotNull", "mean"]))
             .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    steps = [dm.Threshold(color="green", value=None)]
    if percent:
        steps.append(dm.Threshold(color="red", value=TARGET_UTILIZATION))
        panel = panel.min(0).max(1).thresholds_style(common.GraphThresholdsStyleConfig().mode(
            cm.GraphThresholdsStyleMode.DASHED))
    elif bounded:
        panel = panel.min(0).max(1)
    if min_interval:
        panel = panel.interval(min_interval)
    return panel.thresholds(dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))


def stat_panel(panel_id: int, title: str, description: str, x: int, expr: str, *, unit: str) -> stat.Panel:
    """A single value now, over the top row (height 4, a quarter of the width)."""
    return (stat.Panel().id(panel_id).title(title).description(description).datasource(source())
            .grid_pos(dm.GridPos(h=4, w=6, x=x, y=0)).unit(unit)
            .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                        .steps([dm.Threshold(color="blue", value=None)]))
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
            .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
            .text_mode(cm.BigValueTextMode.AUTO).with_target(target("A", expr, instant=True)))


def table_panel(panel_id: int, title: str, description: str, grid: tuple[int, int, int, int]) -> table.Panel:
    """A table with a footer that sums every numeric column."""
    h, w, x, y = grid
    return (table.Panel().id(panel_id).title(title).description(description).datasource(source())
            .grid_pos(dm.GridPos(h=h, w=w, x=x, y=y)).unit("short").decimals(1).show_header(True)
            .cell_height(cm.TableCellHeight.SM)
            .footer(common.TableFooterOptions().show(True).reducer(["sum"]).fields("").count_rows(False)))


def transformation(kind: str, options: dict) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val=kind, options=options)
