"""``GET /explain``: the explain answer over HTTP, from history or from the present.

Where the answer comes from (docs/explain.md):
- ``at`` inside the timeline of the site's ``history_dir`` (a reconstruct output, etc/sites.yaml):
  that output, through exactly the code of ``usage-exporter explain`` (same JSON);
- ``at=now``, no ``at``, or a time after that timeline: the spans the exporter kept from its last
  refresh; the value is the gauge now (not an hourly mean), and the contributions sum to it.

Query parameters: site, at, node_type, pool, state (comma-separated values; empty or ``.*`` =
all), resource, limit (1..MAX_LIMIT, default DEFAULT_LIMIT), offset. ``resource=devices`` is an
edge site's devices family (node_type = machine_name), from history and from the present alike. Anything else, a repeated
parameter or a bad value is a BadRequest with one line saying why.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl

import polars as pl

from exporter.columns import POOLS, STATES, TIMELINE_RESOURCES
from exporter.errors import UsageExporterError
from exporter.explain import DEVICES, Selection, explain_output, explain_present, history_grid
from exporter.live import warmset
from exporter.live.source import JUST_BEFORE
from exporter.live.state import RenderedUsage, SiteState
from exporter.metrics import DEVICE_SECONDS, DEVICES as DEVICES_FAMILY, EXTRA_FAMILIES, FAMILIES, PREFIX

PARAMETERS = ("site", "at", "node_type", "pool", "state", "resource", "limit", "offset")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
# A clicked point on a live graph is up to a lookback (1h) old: such times get the present answer.
PRESENT_SLACK = dt.timedelta(hours=1)
ALL_VALUES = ("", ".*", "$__all", "All")
# Grafana's $resource variable holds metric stems (node, vcpu, memory_byte...): accept both. An
# edge site's devices family is ``devices`` (its counter's stem ``device`` too), as in `explain`.
RESOURCE_NAMES = {**{r: r for r in TIMELINE_RESOURCES},
                  **{f.counter.removeprefix(f"{PREFIX}_").removesuffix("_seconds"): f.resource for f in FAMILIES},
                  DEVICES: DEVICES, DEVICE_SECONDS.name.removeprefix(f"{PREFIX}_").removesuffix("_seconds"): DEVICES}
# The other extra families are knowledge-time lenses (booked ahead, lead times), not sums of spans:
# named so, rather than "unknown resource" (docs/explain.md).
LENSES = {f.name.removeprefix(f"{PREFIX}_") for f in EXTRA_FAMILIES if f not in (DEVICES_FAMILY, DEVICE_SECONDS)}
_LABEL_VALUE = re.compile(r"[^\x00-\x1f]{1,200}")


class BadRequest(Exception):
    """A query /explain cannot answer; the message is the one line the client gets."""


def parse_query(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=len(PARAMETERS))
    except ValueError:
        raise BadRequest(f"malformed query string; parameters are {', '.join(PARAMETERS)}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in PARAMETERS:
            raise BadRequest(f"unknown parameter {key[:40]!r}; parameters are {', '.join(PARAMETERS)}")
        if key in params:
            raise BadRequest(f"parameter {key} given twice (use commas for several values)")
        params[key] = value
    return params


def parse_at(text: str) -> dt.datetime | None:
    """None for the present (``now`` or empty); an ISO time (naive = UTC) or Unix epoch milliseconds
    (what Grafana's ${__value.time} gives)."""
    if text in ("", "now"):
        return None
    try:
        if text.isdigit():
            return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(text))
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise BadRequest(f"at={text[:40]!r} is not a time: give ISO 8601 (UTC), epoch milliseconds or now") from None
    return moment if moment.tzinfo is None else moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _values(params: dict[str, str], key: str, allowed: Sequence[str] | None = None) -> tuple[str, ...] | None:
    text = params.get(key, "")
    if text in ALL_VALUES:
        return None
    values = tuple(dict.fromkeys(v.strip() for v in text.split(",")))
    for value in values:
        if not _LABEL_VALUE.fullmatch(value) or (allowed is not None and value not in allowed):
            hint = f" (one of {', '.join(allowed)})" if allowed else ""
            raise BadRequest(f"{key}={value[:40]!r} is not a valid value{hint}")
    return values


def _number(params: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    text = params.get(key, "")
    if text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{key} must be an integer from {low} to {high}")
    return int(text)


def selection_of(params: dict[str, str], sites: Sequence[str]) -> Selection:
    site = params.get("site", "")
    if site in ALL_VALUES:
        if len(sites) != 1:
            raise BadRequest(f"site is required (one of {', '.join(sites)})")
        site = sites[0]
    if site not in sites:
        raise BadRequest(f"site={site[:40]!r} is not served here (one of {', '.join(sites)})")
    resource = params.get("resource") or "nodes"
    if resource.removeprefix(f"{PREFIX}_") in LENSES:
        raise BadRequest(f"resource={resource[:60]!r} is a knowledge-time lens (booked ahead, lead times), "
                         "not a sum of spans: it is not explained")
    if resource not in RESOURCE_NAMES:
        raise BadRequest(f"resource={resource[:40]!r} is not one of {', '.join(RESOURCE_NAMES)}")
    return Selection(site=site, node_types=_values(params, "node_type"), pools=_values(params, "pool", POOLS),
                     states=_values(params, "state", STATES), resource=RESOURCE_NAMES[resource])


class ExplainEndpoint:
    """``handle(query) -> (status, body)`` for /explain. ``states`` gives the served SiteStates,
    ``histories`` the reconstruct output directory of each site that has one (``history_dir``)."""

    def __init__(self, states: Callable[[], Sequence[SiteState]], histories: Mapping[str, Path] | None = None,
                 saved: Mapping[str, Path] | None = None) -> None:
        self._states = states
        self._histories = dict(histories or {})
        self._saved = dict(saved or {})  # site -> its saved live state (exporter.live.warm)

    def handle(self, query: str) -> tuple[str, bytes]:
        try:
            result = self.explain(parse_query(query))
        except BadRequest as err:
            return "400 Bad Request", f"400 Bad Request: {err}\n".encode()
        except UsageExporterError as err:  # an unreadable history output: not the client's fault
            return "503 Service Unavailable", f"503 Service Unavailable: {str(err).splitlines()[0][:300]}\n".encode()
        return "200 OK", (json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()

    def explain(self, params: dict[str, str]) -> dict:
        states = {state.site: state for state in self._states()}
        selection = selection_of(params, sorted(states))
        at = parse_at(params.get("at", ""))
        limit = _number(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _number(params, "offset", 0, 0, MAX_OFFSET)
        history = self._histories.get(selection.site)
        if at is not None and history is not None:
            grid = history_grid(history)
            if at < grid.start:
                raise BadRequest(f"at={at.isoformat()} is before the history of site {selection.site} "
                                 f"(from {grid.start.isoformat()})")
            if at < grid.start + grid.cells * grid.step:
                return explain_output(history, at, selection, limit=limit, offset=offset)
        return _present(self._with_saved_present(states[selection.site]), selection, requested=at, limit=limit,
                        offset=offset)

    def _with_saved_present(self, state: SiteState) -> SiteState:
        """A state serving saved values (a restart, before its first refresh) with the spans and
        gauges saved beside them (exporter.live.warmset.present)."""
        usage, directory = state.usage, self._saved.get(state.site)
        if usage is None or usage.spans is not None or directory is None:
            return state
        frames = warmset.present(directory, usage.at)
        return state if frames is None else replace(state, usage=replace(usage, **frames))


def _present(state: SiteState, selection: Selection, *, requested: dt.datetime | None, limit: int,
             offset: int) -> dict:
    """The live answer; a requested time must be within PRESENT_SLACK of the last refresh."""
    usage = state.usage
    if usage is None:
        raise BadRequest(f"site {state.site} has no live values yet (first refresh pending or failing)")
    if usage.spans is None or usage.gauge_frame is None:  # saved values whose spans could not be read
        raise BadRequest(f"site {state.site} serves the values saved before its restart; the present is "
                         "explained after its first refresh")
    if requested is not None and requested < usage.at - PRESENT_SLACK:
        raise BadRequest(f"at={requested.isoformat()} is before the live values of site {state.site} "
                         f"({usage.at.isoformat()}) and no history_dir covers it")
    spans, leaves = usage.spans, usage.gauge_frame
    if selection.resource == DEVICES:
        if usage.device_spans is None:
            raise BadRequest(f"site {state.site} has no devices (resource={DEVICES} is an edge site's devices family)")
        spans, leaves = usage.device_spans, device_leaves(usage)
    return explain_present(state.site, usage.at - JUST_BEFORE, spans, leaves, selection,
                           requested=requested, limit=limit, offset=offset)


def device_leaves(usage: RenderedUsage) -> pl.DataFrame:
    """The served devices gauges as explain's leaves (node_type = machine_name, resource nodes),
    the shape of a reconstruct output's device timeline."""
    rows = [(machine_name, pool, state, value)
            for (_, machine_name, pool, state), value in usage.families.get(DEVICES_FAMILY.name, ())]
    return pl.DataFrame(rows, schema={"node_type": pl.String, "pool": pl.String, "state": pl.String,
                                      "value": pl.Float64}, orient="row").with_columns(resource=pl.lit("nodes"))
