"""Every PromQL expression in grafana/dashboards/*.json runs on a real Prometheus holding
backfilled (promtool blocks) + scraped (live exporter) data: no errors, non-empty results,
continuous lines, stacked states summing to the total capacity, and node-hours equal to the
hand-computed integral of the data that went in.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from exporter.metrics import BOOKED_AHEAD, DEFAULT_INSTANCE, DEFAULT_JOB, FAMILIES, LEAD_TIME
from tests.dashboards.data import EDGE_SITE, NEGATIVE_SITE, SITES, DemoData, epoch

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROVISIONED_UID = "openstack-usage-prometheus"
USAGE_VARIABLES = {"datasource", "site", "node_type", "resource"}
# Dashboards whose data only exists live (self-metrics of the exporter, never backfilled).
LIVE_ONLY = {"exporter-health"}


# --- reading dashboards -------------------------------------------------------------------------

def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels_of(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def panel_targets(dashboard: dict):
    """(panel, target) for every PromQL target."""
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel, target


def variables(dashboard: dict) -> dict[str, dict]:
    return {var["name"]: var for var in dashboard.get("templating", {}).get("list", [])}


def variable_query(var: dict) -> str:
    query = var.get("query")
    return query["query"] if isinstance(query, dict) else query


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` the way Grafana does; unknown variables are an error."""
    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unknown template variable ${name} in {expr!r}")
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def provisioned_datasource() -> dict:
    [source] = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    return source


def seconds(duration: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smhd])", duration).groups()
    return int(number) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def default_values(dashboard: dict, *, interval_s: int, range_s: int, resource: str | None = None) -> dict:
    """Values Grafana would substitute: 'All' for multi-value variables, defaults otherwise."""
    scrape = seconds(provisioned_datasource()["jsonData"]["timeInterval"])
    values = {"__interval": f"{interval_s}s", "__interval_ms": str(interval_s * 1000), "__range": f"{range_s}s",
              "__rate_interval": f"{max(interval_s + scrape, 4 * scrape)}s", "datasource": PROVISIONED_UID}
    for name, var in variables(dashboard).items():
        if var["type"] == "datasource":
            continue
        if var.get("includeAll"):
            values[name] = var.get("allValue") or ".*"
        elif var["type"] == "constant":  # Grafana substitutes a constant's query
            values[name] = str(var["query"])
        else:
            values[name] = str(var["current"]["value"])
    if resource is not None:
        values["resource"] = resource
    return values


# --- contract checks (no Prometheus needed) -----------------------------------------------------

@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path):
    dashboard = load(path)
    assert dashboard["uid"] and dashboard["title"]
    names = set(variables(dashboard))
    assert "datasource" in names and "site" in names
    if path.stem not in LIVE_ONLY:
        assert USAGE_VARIABLES <= names
    datasource = variables(dashboard)["datasource"]
    assert datasource["query"] == "prometheus" and datasource["current"]["value"] == PROVISIONED_UID
    ids = [panel["id"] for panel in panels_of(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel, target in panel_targets(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}" == target["datasource"]["uid"], panel["title"]
    for var in variables(dashboard).values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "${datasource}"


def test_dashboards_cover_issue_6():
    titles = {load(path)["title"] for path in DASHBOARDS}
    assert len(DASHBOARDS) == 4
    assert {"OpenStack usage: site", "OpenStack usage: all sites", "OpenStack usage: node-hours report",
            "OpenStack usage: exporter health"} == titles


def test_resource_variable_names_real_metric_families():
    """``openstack_usage_${resource}s`` / ``..._seconds_total`` (and the booked-ahead
    ``openstack_usage_booked_ahead_${resource}s``) must be families of exporter.metrics."""
    from exporter.reconstruct.device_family import COUNTER as DEVICE_COUNTER, GAUGE as DEVICE_GAUGE

    gauges = {family.gauge for family in FAMILIES}
    counters = {family.counter_sample for family in FAMILIES}
    for path in DASHBOARDS:
        dashboard = load(path)
        var = variables(dashboard).get("resource")
        if var is None:
            continue
        options = [option["value"] for option in var["options"]]
        assert len(options) == len(FAMILIES)
        assert {f"openstack_usage_{value}s" for value in options} == gauges
        assert {f"openstack_usage_{value}_seconds_total" for value in options} == counters
        assert {f"openstack_usage_booked_ahead_{value}s" for value in options} == {f.name for f in BOOKED_AHEAD}
        for _, target in panel_targets(dashboard):
            names = set(re.findall(r"\bopenstack_usage_(?:\w+|\$\{\w+\})+", target["expr"]))
            assert names <= {"openstack_usage_${resource}s", "openstack_usage_${resource}_seconds_total",
                             "openstack_usage_booked_ahead_${resource}s", LEAD_TIME.name,
                             DEVICE_GAUGE, f"{DEVICE_COUNTER}_total"}  # the devices family (edge sites)


def test_gauges_drawn_over_a_lookback_window_and_job_instance_collapsed():
    """Sparse hourly history needs last_over_time(...[$lookback]); max without(job, instance) keeps a
    label set that exists under two job/instance pairs from being counted twice."""
    for path in DASHBOARDS:
        for panel, target in panel_targets(load(path)):
            expr = target["expr"]
            for selector in re.findall(r"openstack_usage_\$\{resource\}s\{[^}]*\}(\[[^\]]*\])?", expr):
                assert selector == "[$lookback]", (panel["title"], expr)
            if "openstack_usage_${resource}" in expr:
                assert "max without (job, instance)" in expr, (panel["title"], expr)


def test_state_colours_are_the_ones_plot_uses():
    from exporter.plot import STATE_COLOURS, leaf_name

    dashboard = load(ROOT / "grafana/dashboards/site-usage.json")
    [panel] = [p for p in panels_of(dashboard) if p["title"] == "Capacity by state"]
    fixed = {o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
             for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"}
    assert fixed == {leaf_name(*key): colour for key, colour in STATE_COLOURS.items()}


def test_shipped_dashboards_are_the_generator_output_for_the_example_config():
    """Regenerate with: usage-exporter dashboards --config etc/sites.yaml --out grafana/dashboards"""
    from exporter.config import load_config
    from exporter.dashboards import render_dashboards

    rendered = render_dashboards(load_config(ROOT / "etc/sites.yaml"))
    assert sorted(rendered) == [path.name for path in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"{path.name} is stale: run usage-exporter dashboards"


def test_cross_site_colours_are_the_configured_site_colours():
    from exporter.colours import site_colours
    from exporter.config import load_config

    expected = site_colours(load_config(ROOT / "etc/sites.yaml"))
    assert expected["kvm_tacc"] == "#f0e442" and len(set(expected.values())) == len(expected)
    dashboard = load(ROOT / "grafana/dashboards/cross-site.json")
    for panel in panels_of(dashboard):
        if panel["id"] == 4:
            continue  # the all-sites panel has no per-site lines
        fixed = {o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
                 for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byRegexp"
                 and o["matcher"]["options"].startswith("^")}
        assert fixed == {f"^{site}( .*)?$": colour for site, colour in expected.items()}, panel["title"]


def test_provisioning_files_parse_and_point_at_the_dashboards():
    source = provisioned_datasource()
    assert source["uid"] == PROVISIONED_UID and source["type"] == "prometheus"
    # Grafana's "scrape interval" must be the real one, or $__rate_interval windows hold < 2 samples.
    shipped = yaml.safe_load((ROOT / "etc/prometheus.yml").read_text())
    [job] = [job for job in shipped["scrape_configs"] if job["job_name"] == DEFAULT_JOB]
    scrape = job.get("scrape_interval", shipped["global"]["scrape_interval"])
    assert seconds(source["jsonData"]["timeInterval"]) == seconds(scrape)
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/openstack-usage.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --- queries against a real Prometheus ----------------------------------------------------------

def query_values(prom, expr: str, **params) -> list[dict]:
    kind = "query_range" if "step" in params else "query"
    data = prom.api(kind, query=expr, **params)
    return data["result"]


def as_series(result: list[dict]) -> dict[tuple, dict[float, float]]:
    """{labels: {t: value}} from an instant or range result."""
    out = {}
    for item in result:
        key = tuple(sorted(item["metric"].items()))
        points = item.get("values") or [item["value"]]
        out[key] = {float(t): float(v) for t, v in points}
    return out


def windows(demo: DemoData) -> dict[str, dict]:
    """The query windows: whole backfilled history (unaligned start, hour step) and the live tail."""
    return {
        # starts off the hour, after two samples (rate windows need two)
        "history": {"start": demo.history_start + 7200 + 1234, "end": demo.history_end, "step": 3600},
        "history-daily": {"start": demo.history_start + 7200 + 1234, "end": demo.history_end, "step": 86400},
        "live": {"start": demo.live_start, "end": demo.live_end, "step": 1},
    }


@pytest.mark.prometheus
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_runs_and_returns_continuous_data(demo, path):
    dashboard = load(path)
    live_only = path.stem in LIVE_ONLY
    for label, window in windows(demo).items():
        if live_only and label != "live":
            continue
        range_s = int(window["end"] - window["start"])
        resources = [None] if label != "history" else [o["value"] for o in
                                                         variables(dashboard).get("resource", {}).get("options", [])] or [None]
        for resource in resources:
            values = default_values(dashboard, interval_s=window["step"], range_s=range_s, resource=resource)
            for panel, target in panel_targets(dashboard):
                expr = substitute(target["expr"], values)
                where = f"{path.stem} / {panel['title']} / {target['refId']} [{label}, {values.get('resource')}]"
                instant = query_values(demo.prometheus, expr, time=window["end"])
                assert instant, f"empty instant result: {where}: {expr}"
                if target.get("instant"):
                    continue
                ranged = as_series(query_values(demo.prometheus, expr, **window))
                assert ranged, f"empty range result: {where}: {expr}"
                steps = int((window["end"] - window["start"]) // window["step"]) + 1
                if label != "live":
                    for key, points in ranged.items():
                        if LEAD_TIME.name in expr:  # daily samples only on days with such leases: gaps are real
                            continue
                        assert len(points) == steps, f"gaps ({len(points)}/{steps} points) in {key}: {where}"


@pytest.mark.prometheus
@pytest.mark.parametrize("path", [p for p in DASHBOARDS if p.stem not in LIVE_ONLY], ids=lambda p: p.stem)
def test_template_variable_queries_list_the_demo_labels(demo, path):
    dashboard = load(path)
    for name, var in variables(dashboard).items():
        if var["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable_query(var))
        assert match, variable_query(var)
        selector = substitute(match.group(1), {"site": ".*"})
        found = set(demo.prometheus.api(f"label/{match.group(2)}/values", **{
            "match[]": selector, "start": demo.history_start, "end": demo.live_end}))
        assert found == getattr(demo, f"{name}s"), name


@pytest.mark.prometheus
@pytest.mark.parametrize("path", [p for p in DASHBOARDS if p.stem not in LIVE_ONLY], ids=lambda p: p.stem)
def test_stacked_series_add_up_to_their_total_line(demo, path):
    dashboard = load(path)
    checked = 0
    for panel in panels_of(dashboard):
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        if custom.get("stacking", {}).get("mode") != "normal":
            continue
        refs = {t["refId"]: t for t in panel["targets"]}
        assert "total" in refs, f"stacked panel {panel['title']!r} has no total line to check against"
        stacked = [ref for ref in refs if ref not in {"total", "reservable"}]
        for label, window in windows(demo).items():
            values = default_values(dashboard, interval_s=window["step"], range_s=0)
            total = as_series(query_values(demo.prometheus, substitute(refs["total"]["expr"], values), **window))
            [total_points] = total.values()
            sums: dict[float, float] = {}
            for ref in stacked:
                result = query_values(demo.prometheus, substitute(refs[ref]["expr"], values), **window)
                for points in as_series(result).values():
                    for t, v in points.items():
                        sums[t] = sums.get(t, 0.0) + v
            assert sums.keys() == total_points.keys(), (panel["title"], label)
            for t, v in total_points.items():
                assert math.isclose(sums[t], v, rel_tol=1e-9), (panel["title"], label, t)
            checked += 1
    assert checked or path.stem == "node-hours"


@pytest.mark.prometheus
def test_site_usage_total_is_the_generated_capacity_in_history_and_live(demo):
    dashboard = load(ROOT / "grafana/dashboards/site-usage.json")
    [total] = [t for p, t in panel_targets(dashboard) if p["title"] == "Capacity by state" and t["refId"] == "total"]
    generated = "|".join(SITES)  # the hand-made site has no truth
    expr = substitute(total["expr"], default_values(dashboard, interval_s=3600, range_s=0) | {"site": generated})
    [points] = as_series(query_values(demo.prometheus, expr, **windows(demo)["history"])).values()
    for t, v in points.items():
        hour = t // 3600 * 3600  # last_over_time picks the hourly sample: the mean over that hour
        assert v == pytest.approx(demo.truth_total_nodes(hour, 3600), rel=1e-9), t
    [now] = as_series(query_values(demo.prometheus, expr, time=demo.live_end)).values()
    assert next(iter(now.values())) == pytest.approx(demo.truth_total_nodes(demo.live_end, 1))


@pytest.mark.prometheus
@pytest.mark.parametrize("site", ["alpha", "beta", NEGATIVE_SITE])
def test_node_hours_table_equals_the_integral_of_the_backfilled_timeline(demo, site):
    """Exact at any range edges, also where a leaf was negative (its counter decreases: increase()
    would read that as a counter reset and count the whole counter again)."""
    dashboard = load(ROOT / "grafana/dashboards/node-hours.json")
    [(_, target)] = [(p, t) for p, t in panel_targets(dashboard) if p["id"] == 1]
    start, end = demo.history_start + 24 * 3600 + 1234, demo.history_end - 5 * 3600 + 1800
    values = default_values(dashboard, interval_s=3600, range_s=int(end - start)) | {"site": site}
    result = as_series(query_values(demo.prometheus, substitute(target["expr"], values), time=end))
    got: dict[str, float] = {}
    for key, points in result.items():
        state = dict(key)["state"]
        got[state] = got.get(state, 0.0) + next(iter(points.values()))
    # counter at the last sample at or before each end: Σ of the hourly values before that sample
    expected = demo.timeline_hours_by_state(start // 3600 * 3600, end // 3600 * 3600, site=site)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert sum(expected.values()) > 0


@pytest.mark.prometheus
@pytest.mark.parametrize("site", ["alpha", NEGATIVE_SITE])
def test_rolling_mean_is_the_time_weighted_30_day_utilization(demo, site):
    dashboard = load(ROOT / "grafana/dashboards/cross-site.json")
    [mean] = [t for p, t in panel_targets(dashboard) if p["id"] == 3 and t["refId"] == "mean"]
    at = demo.history_end - 3 * 3600 + 600
    expr = substitute(mean["expr"], default_values(dashboard, interval_s=3600, range_s=0) | {"site": site})
    [points] = as_series(query_values(demo.prometheus, expr, time=at)).values()
    # history is shorter than 30 days, so the mean runs from the first sample to the last one before `at`
    hours = demo.timeline_hours_by_state(demo.history_start, at // 3600 * 3600, site=site, pool="reservable")
    expected = (hours["idle"] + hours["active"] + hours["stopped"]) / sum(hours.values())
    assert next(iter(points.values())) == pytest.approx(expected, rel=1e-9)


@pytest.mark.prometheus
def test_history_and_live_are_one_series_per_label_set(demo):
    """job/instance pinning: no label set appears under two job/instance pairs."""
    served = f'openstack_usage_nodes{{site=~"{"|".join(SITES)}"}}'  # the hand-made site is history only
    result = demo.prometheus.api("series", **{"match[]": served, "start": demo.history_start, "end": demo.live_end})
    assert {(s["job"], s["instance"]) for s in result} == {(DEFAULT_JOB, DEFAULT_INSTANCE)}
    query = f"last_over_time({served}[1h])"
    history = as_series(query_values(demo.prometheus, query, time=demo.history_end))
    live = as_series(query_values(demo.prometheus, query, time=demo.live_end))
    assert history.keys() == live.keys() and len(history) == len(result)


@pytest.mark.prometheus
def test_edge_history_and_live_devices_are_one_series(demo):
    """The edge site's devices family: backfilled history and scraped live values are one series per
    label set, the gauge is the device timeline's value, and the counter continues without a reset."""
    gauge = f'openstack_usage_devices{{site="{EDGE_SITE}"}}'
    counter = f'openstack_usage_device_seconds_total{{site="{EDGE_SITE}"}}'
    for selector in (gauge, counter):
        result = demo.prometheus.api("series", **{"match[]": selector, "start": demo.history_start,
                                                  "end": demo.live_end})
        assert result and {(s["job"], s["instance"]) for s in result} == {(DEFAULT_JOB, DEFAULT_INSTANCE)}
        history = as_series(query_values(demo.prometheus, f"last_over_time({selector}[1h])", time=demo.history_end))
        live = as_series(query_values(demo.prometheus, f"last_over_time({selector}[5s])", time=demo.live_end))
        assert history.keys() == live.keys() and len(history) == len(result)
    # history: the backfilled gauge at an hour is the device timeline's value for that hour
    frame = pl.read_parquet(demo.edge_timeline)
    at = demo.history_end
    hour = dt.datetime.fromtimestamp(at, dt.timezone.utc).replace(tzinfo=None)
    expected = frame.filter(pl.col("timestamp") == hour).group_by("state").agg(pl.col("value").sum())
    got = as_series(query_values(demo.prometheus, f"sum by (state) ({gauge})", time=at))
    assert {dict(k)["state"]: next(iter(v.values())) for k, v in got.items()} == pytest.approx(
        dict(expected.iter_rows()), abs=1e-9)
    # the counter is one series from the first backfilled sample to the last scrape, with no reset
    # anywhere (in the backfill, at the backfill -> live junction, between refreshes) and no hole:
    # every backfilled hour, and a sample in every successful scrape once the series is served
    window = f"{math.ceil(demo.live_end - demo.history_start) + 1}s"
    raw = as_series(query_values(demo.prometheus, f"{counter}[{window}]", time=demo.live_end))
    resets = as_series(query_values(demo.prometheus, f"resets({counter}[{window}])", time=demo.live_end))
    assert len(resets) == len(raw) and {next(iter(v.values())) for v in resets.values()} == {0.0}, \
        {series_name(key): decreases(points) for key, points in raw.items() if decreases(points)}
    [up] = as_series(query_values(demo.prometheus, f'up{{job="{DEFAULT_JOB}"}}[{window}]', time=demo.live_end)).values()
    for key, points in raw.items():
        backfilled = sorted(t for t in points if t <= demo.history_end)
        live = sorted(t for t in points if t >= demo.live_start)
        assert backfilled and live, series_name(key)  # both sides of the junction are in the window
        assert all(b - a == 3600 for a, b in zip(backfilled, backfilled[1:])), series_name(key)
        assert {t for t, value in up.items() if value == 1 and t >= live[0]} <= set(live), series_name(key)


def series_name(key: tuple) -> str:
    labels = dict(key)
    return f'{labels["machine_name"]}/{labels["pool"]}/{labels["state"]}'


def decreases(points: dict[float, float]) -> list[tuple[float, float, float]]:
    """(time, value before, value at time) wherever a counter went down."""
    ordered = sorted(points.items())
    return [(t, before, after) for (_, before), (t, after) in zip(ordered, ordered[1:]) if after < before]


@pytest.mark.prometheus
@pytest.mark.parametrize("period", ["day", "week"])
def test_kpi_report_equals_the_node_hours_dashboard_for_the_same_period(demo, period):
    """`usage-exporter report` from the timeline the backfill read == the node-hours dashboard's
    KPI summary over the same calendar period, from Prometheus (complete periods only)."""
    from exporter.reports.kpi import kpi_table

    dashboard = load(ROOT / "grafana/dashboards/node-hours.json")
    [kpi_panel] = [p for p in panels_of(dashboard) if p["title"] == "KPI summary by site"]
    checked = 0
    for site in SITES:
        report = kpi_table(demo.timeline.filter(pl.col("site") == site), period=period, step_seconds=3600)
        by_period = report.filter(pl.col("complete")).group_by("period_start", "period_end").agg(
            pl.col("node_hours_total", "node_hours_reservable", "node_hours_committed").sum())
        for start, end, total, reservable, committed in by_period.iter_rows():
            lo, hi = (epoch(dt.datetime.combine(day, dt.time())) for day in (start, end))
            if lo < demo.history_start or hi > demo.history_end:
                continue  # the report period must lie inside the backfilled history
            values = default_values(dashboard, interval_s=3600, range_s=hi - lo) | {"site": site}
            got = {}
            for target in kpi_panel["targets"]:
                [value] = as_series(query_values(demo.prometheus, substitute(target["expr"], values), time=hi)).values()
                got[target["refId"]] = next(iter(value.values()))
            assert got["total"] == pytest.approx(total, rel=1e-9), (site, start)
            assert got["reservable"] == pytest.approx(reservable, rel=1e-9), (site, start)
            assert got["committed"] == pytest.approx(committed, rel=1e-9), (site, start)
            if reservable == 0:  # no reservable hours: the report's ratio is empty, PromQL's 0 / 0 is NaN
                assert math.isnan(got["utilization"]), (site, start)
            else:
                assert got["utilization"] == pytest.approx(committed / reservable, rel=1e-9), (site, start)
            checked += 1
    assert checked >= (2 if period == "week" else 20)


@pytest.mark.prometheus
def test_device_report_equals_the_backfilled_device_seconds_for_the_same_day(demo):
    """`report`'s device table (from the device timeline the backfill read) == the device-seconds
    counter's difference over the same complete day in Prometheus, per machine_name, for total,
    committed and occupied (the leaves of docs/reports.md)."""
    from exporter.reports.kpi import device_kpi_table

    report = device_kpi_table(pl.read_parquet(demo.edge_timeline), period="day", step_seconds=3600)
    leaves = {"total": 'state=~".+"', "committed": 'pool="reservable",state=~"idle|active|stopped"',
              "occupied": 'state=~"active|stopped"'}
    checked = 0
    for start, end in report.filter(pl.col("complete")).select("period_start", "period_end").unique().sort(
            "period_start").rows():
        lo, hi = (epoch(dt.datetime.combine(day, dt.time())) for day in (start, end))
        if lo < demo.history_start or hi > demo.history_end:
            continue
        for level, chosen in leaves.items():
            counter = f'openstack_usage_device_seconds_total{{site="{EDGE_SITE}",{chosen}}}'
            query = (f"sum by (machine_name) (last_over_time({counter}[1h]) "
                     f"- last_over_time({counter}[1h] offset {hi - lo}s)) / 3600")
            got = {dict(k)["machine_name"]: next(iter(v.values()))
                   for k, v in as_series(query_values(demo.prometheus, query, time=hi)).items()}
            day = report.filter(pl.col("period_start") == start)
            expected = dict(day.select("machine_name", f"device_hours_{level}").iter_rows())
            assert set(got) <= set(expected), (level, start)  # a model with no series has no hours
            assert {m: got.get(m, 0.0) for m in expected} == pytest.approx(expected, rel=1e-9, abs=1e-9), (level, start)
        checked += 1
    assert checked >= 10  # the complete days inside the fixture's backfilled history (19 of them)


def truth_unknown_nodes(truth: pl.DataFrame, at: dt.datetime) -> float:
    """Hosts at ``at`` that no evidence puts in a pool, by docs/semantics.md "Pools" from the truth:
    these generated sites never soft-delete a Blazar host (so Blazar's history is never complete),
    so only a Blazar row (reservable) or an on-demand instance running then decides a host."""
    live = truth.filter((pl.col("start") <= at) & (pl.col("end").is_null() | (pl.col("end") > at)))
    hosts = set(live.filter(pl.col("level") == "total")["hypervisor_hostname"])
    decided = set(live.filter(pl.col("level") == "reservable")["hypervisor_hostname"]) | set(
        live.filter((pl.col("level") == "occupied") & (pl.col("booking") == "ondemand"))["hypervisor_hostname"])
    return float(len(hosts - decided))


@pytest.mark.prometheus
def test_unknown_pool_history_and_live_are_one_series(demo):
    """pool="unknown" is backfilled and served live under one label set per (site, node type),
    with the timeline's values in history (the hours before a host's Blazar enrolment) and the
    truth's undecided hosts now."""
    selector = f'openstack_usage_nodes{{pool="unknown",site=~"{"|".join(SITES)}"}}'
    series = demo.prometheus.api("series", **{"match[]": selector, "start": demo.history_start, "end": demo.live_end})
    assert series and {(s["job"], s["instance"], s["state"]) for s in series} == {
        (DEFAULT_JOB, DEFAULT_INSTANCE, "available")}
    query = f"sum(last_over_time({selector}[1h]))"
    # history, hour by hour: the timeline's unknown pool (the backfill's input), not all zero
    [history] = as_series(query_values(demo.prometheus, query, start=demo.history_start, end=demo.history_end,
                                       step=3600)).values()
    unknown = (demo.timeline.filter(pl.col("pool") == "unknown", pl.col("resource") == "nodes",
                                    pl.col("site").cast(pl.String).is_in(list(SITES)))
               .group_by("timestamp").agg(pl.col("value").sum()))
    expected = {float(epoch(t)): v for t, v in unknown.iter_rows()}
    assert history == pytest.approx({t: expected[t] for t in history}, abs=1e-9)
    assert max(history.values()) > 0
    # now: the live exporter's value of the same series
    now = dt.datetime.fromtimestamp(demo.live_end, dt.timezone.utc).replace(tzinfo=None)
    [live] = as_series(query_values(demo.prometheus, query, time=demo.live_end)).values()
    assert next(iter(live.values())) == pytest.approx(truth_unknown_nodes(demo.truth, now))
    # history and present of each label set are one series: the same keys at both ends
    each = f"last_over_time({selector}[1h])"
    ends = [as_series(query_values(demo.prometheus, each, time=t)).keys() for t in (demo.history_end, demo.live_end)]
    assert ends[0] == ends[1] and len(ends[0]) == len(series)
