"""The "Explain this point" data links of the site and cross-site dashboards, clicked on real points.

Each point comes from the real Prometheus of tests/dashboards/data.py (backfilled + scraped); the
link's variables are substituted as Grafana does (``${__value.time}`` = the point's time in epoch
ms, ``${__field.labels.X}`` = the series' label X, dashboard variables); the URL goes to the real
running exporter, whose /explain answers from the same reconstruct outputs the backfill read. On
the site dashboard the answer's value is the point's value (a ratio's: its numerator's).
"""

from __future__ import annotations

import json
import re
import urllib.request
from urllib.parse import parse_qsl, urlsplit

import pytest

from exporter.live.explain import PARAMETERS
from tests.dashboards.data import EDGE_SITE, SITES
from tests.dashboards.test_dashboards import (ROOT, as_series, default_values, load, panels_of, query_values,
                                              substitute, windows)

EXPLAINED = [ROOT / "grafana/dashboards/site-usage.json", ROOT / "grafana/dashboards/cross-site.json"]
# site-usage draws the hourly samples themselves; cross-site draws means over a day or 30 days,
# and its link explains the hourly cell at the clicked time (docs/explain.md, "From Grafana")
SAME_VALUE = {"site-usage"}
_LINK_VARIABLE = re.compile(r"\$\{([\w.]+)(?::(\w+))?\}")


def links_by_query(panel: dict) -> dict[str, list[dict]]:
    """{refId: data links} from the panel's by-query overrides."""
    links: dict[str, list[dict]] = {}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byFrameRefID":
            for prop in override["properties"]:
                if prop["id"] == "links":
                    links.setdefault(override["matcher"]["options"], []).extend(prop["value"])
    return links


def timeseries_panels(dashboard: dict):
    """The time-series panels of the timeline's series (the booked-ahead and lead-time lenses are
    extra families /explain does not cover: docs/explain.md)."""
    return [panel for panel in panels_of(dashboard) if panel["type"] == "timeseries"
            and all("openstack_usage_${resource}" in target["expr"] for target in panel["targets"])]


def click(url: str, values: dict[str, str], labels: dict[str, str], time_ms: int) -> str:
    """The URL Grafana opens for a point at ``time_ms`` of a series with ``labels``."""
    def one(match: re.Match) -> str:
        name, fmt = match.groups()
        assert fmt in (None, "csv"), f"unexpected variable format {fmt} in {url}"
        if name == "__value.time":
            return str(time_ms)
        if name.startswith("__field.labels."):
            label = name.removeprefix("__field.labels.")
            assert label in labels, f"link uses label {label!r}, the series has only {sorted(labels)}: {url}"
            return labels[label]
        assert name in values, f"unknown variable ${{{name}}} in {url}"
        return values[name]
    clicked = _LINK_VARIABLE.sub(one, url)
    assert "$" not in clicked, clicked
    return clicked


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200, url
        return json.loads(response.read())


@pytest.mark.parametrize("path", EXPLAINED, ids=lambda p: p.stem)
def test_every_series_of_every_time_series_panel_has_an_explain_link(path):
    dashboard = load(path)
    assert "exporter_url" in {var["name"] for var in dashboard["templating"]["list"]}
    panels = timeseries_panels(dashboard)
    assert panels
    for panel in panels:
        links = links_by_query(panel)
        assert set(links) == {target["refId"] for target in panel["targets"]}, panel["title"]
        for ref, [link] in links.items():
            assert link["title"] == "Explain this point", (panel["title"], ref)
            assert link["url"].startswith("${exporter_url}/explain?"), link["url"]


def numerator_values(prom, expr: str, at: float) -> dict[tuple, float]:
    """The value at ``at`` of each series of a ratio's numerator (``expr`` up to its top-level ' / ');
    the site dashboard's gauges hold no other division."""
    numerator = expr.split(" / ")[0]
    return {key: next(iter(points.values())) for key, points in as_series(query_values(prom, numerator, time=at)).items()}


@pytest.mark.prometheus
@pytest.mark.parametrize("site", [*sorted(SITES), EDGE_SITE])
@pytest.mark.parametrize("path", EXPLAINED, ids=lambda p: p.stem)
def test_clicking_a_history_point_explains_its_value(demo, path, site):
    dashboard = load(path)
    window = windows(demo)["history"]
    at = window["start"] + 5 * 3600  # a point Grafana draws: off the hour, inside the backfilled history
    values = default_values(dashboard, interval_s=3600, range_s=0) | {"site": site, "exporter_url": demo.exporter_url}
    for panel in timeseries_panels(dashboard):
        if ("openstack_usage_device" in panel["targets"][0]["expr"]) != (site == EDGE_SITE):
            continue  # the devices panels draw the edge site; it has no nodes
        links = links_by_query(panel)
        for target in panel["targets"]:
            expr = substitute(target["expr"], values)
            [link] = links[target["refId"]]
            numerators = numerator_values(demo.prometheus, expr, at)
            series = as_series(query_values(demo.prometheus, expr, time=at))
            assert series, (panel["title"], target["refId"])
            for key in series:
                url = click(link["url"], values, dict(key), int(at * 1000))
                parts = urlsplit(url)
                assert parts.path == "/explain"
                params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
                assert set(params) <= set(PARAMETERS), url
                answer = get_json(url)
                assert answer["source"] == "history" and answer["site"] == site, url
                if path.stem in SAME_VALUE:
                    assert answer["value"] == pytest.approx(numerators[key], rel=1e-9, abs=1e-9), (panel["title"], url)
                    assert answer["contributions_sum"] == pytest.approx(answer["value"], rel=1e-9, abs=1e-9)


@pytest.mark.prometheus
def test_clicking_a_live_point_explains_the_present(demo):
    dashboard = load(EXPLAINED[0])
    at = demo.live_end
    values = default_values(dashboard, interval_s=1, range_s=0) | {"site": "alpha", "exporter_url": demo.exporter_url}
    [panel] = [p for p in timeseries_panels(dashboard) if p["title"] == "Capacity by state"]
    [target] = [t for t in panel["targets"] if t["refId"] == "A"]
    [link] = links_by_query(panel)["A"]
    series = as_series(query_values(demo.prometheus, substitute(target["expr"], values), time=at))
    assert series
    for key in series:
        answer = get_json(click(link["url"], values, dict(key), int(at * 1000)))
        assert answer["source"] == "live"
        assert answer["contributions_sum"] == pytest.approx(answer["value"], rel=1e-9, abs=1e-9)
        assert answer["selection"]["pool"] in (dict(key)["pool"], [dict(key)["pool"]])
