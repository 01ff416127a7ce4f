"""The "Explain this point" data link: ``/explain`` on the exporter for the clicked time and the
clicked series' labels (docs/explain.md, "From Grafana").

A series carries the labels its query sums ``by``; every other parameter comes from the dashboard
(``site``, ``node_type``, ``resource``) or from the query's own level filter (pool, state), which
is parsed from the same filter text the PromQL is built from, so link and query cannot disagree.
A ratio's link explains its numerator: callers pass the numerator's level.
"""

from __future__ import annotations

import re

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm

EXPLAIN_TITLE = "Explain this point"
EXPORTER_URL_VARIABLE = "exporter_url"
DEFAULT_EXPORTER_URL = "http://localhost:9188"  # `serve --listen :9188`, published so by the compose stack
_LEVEL_FILTER = re.compile(r'(\w+)=~?"([^"]*)"')


def exporter_url_variable() -> dashboard.TextBoxVariable:
    return (dashboard.TextBoxVariable(EXPORTER_URL_VARIABLE).label("Exporter URL")
            .description("Where your browser reaches `usage-exporter serve`: the data links "
                         "\"Explain this point\" open its /explain")
            .default_value(DEFAULT_EXPORTER_URL)
            .current(dm.VariableOption(text=DEFAULT_EXPORTER_URL, value=DEFAULT_EXPORTER_URL, selected=True)))


def level_parameters(level: str) -> dict[str, str]:
    """``pool="reservable",state=~"idle|active"`` -> {pool: reservable, state: idle,active}."""
    return {label: value.replace("|", ",") for label, value in _LEVEL_FILTER.findall(level)}


def explain_url(level: str, by: str | None = None) -> str:
    """The link's URL template for a series of ``level`` summed by the labels ``by``."""
    params = {"site": "${site:csv}", "node_type": "${node_type:csv}", **level_parameters(level)}
    for label in (name.strip() for name in (by or "").split(",") if name.strip()):
        params[label] = f"${{__field.labels.{label}}}"
    params |= {"resource": "${resource}", "at": "${__value.time}"}
    return f"${{{EXPORTER_URL_VARIABLE}}}/explain?" + "&".join(f"{key}={value}" for key, value in params.items())


def explain_link(level: str, by: str | None = None, *, devices: bool = False) -> list[dm.DynamicConfigValue]:
    """Field-config properties giving a query's series the link (an override by query);
    ``devices``: a series of the CHI@Edge devices family."""
    url = device_explain_url(level, by) if devices else explain_url(level, by)
    link = {"title": EXPLAIN_TITLE, "url": url, "targetBlank": True}
    return [dm.DynamicConfigValue(id_val="links", value=[link])]


def device_explain_url(level: str, by: str | None = None) -> str:
    """The link of a devices-family series: ``resource=devices``, its machine_name as the node type."""
    labels = [name.strip() for name in (by or "").split(",") if name.strip()]
    params = {"site": "${site:csv}", **level_parameters(level)}
    for label in labels:
        params["node_type" if label == "machine_name" else label] = f"${{__field.labels.{label}}}"
    params |= {"resource": "devices", "at": "${__value.time}"}
    return f"${{{EXPORTER_URL_VARIABLE}}}/explain?" + "&".join(f"{key}={value}" for key, value in params.items())
