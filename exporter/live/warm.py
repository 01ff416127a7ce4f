"""Warm start: the live exporter's state on disk, so a restart serves at once and then catches up.

After every successful refresh a site's state is written to ``<data_dir>/<site>/live-state/`` as
one set, swapped in atomically (``exporter.publish.staged_directory``: a reader or a crash sees the
old set or the new one, never a mix; written by exporter.live.warmset):

- ``state.json``: format, the key the values depend on (tool version and the site's settings),
  the moment the served values describe (``published_at``), the table cache's watermark, the wall
  time of the last full reload and the cut-off C of the counters, and each table's read metadata;
- ``published.json``: every series ``/metrics`` served, as it rendered them (counters as held):
  the usage gauges and counters, the extra families (booked ahead, devices) and the disabled hosts;
  ``published.{spans,gauges,device_spans}.parquet``: the frames behind them, for ``/explain``;
- ``cutoff.counters.parquet``, ``cutoff.families/<family>.parquet``: the counters integrated up to
  C by the last full reload (those of the devices family too);
- ``tables/<schema.table>.parquet``: the table cache. A table unchanged since the previous set is
  hard-linked from it, so after a full reload only the tables that changed are written again.

On start the published values are served before anything else is done: this module reads them
with the standard library only (no polars, no database driver: exporter.live.late), and their
``last_refresh_timestamp`` says how old they are; counters continue from them, never lower. The
first refresh then restores the table cache and reads only the rows changed since the watermark.
A full reload happens when the last one is older than ``full_reload_interval``, as without a
restart. A set whose key differs (another tool version, other site settings) or that cannot be
read is ignored: a cold start, logged once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

from exporter import __version__
from exporter.config import SiteConfig
from exporter.dburl import location
from exporter.live.state import RenderedUsage

log = logging.getLogger("exporter.live")

FORMAT = "openstack-usage-exporter/live-state/2"
STATE_DIR = "live-state"
STATE = "state.json"
PUBLISHED = "published.json"


def state_key(site: SiteConfig) -> str:
    """What the persisted values depend on: the tool version and every setting of the site (of a
    database URL, where it points: exporter.dburl.location, no credentials)."""
    settings = dataclasses.asdict(site)
    settings["db_url"] = location(site.db_url) if site.db_url else None
    settings["db_urls"] = {schema: location(url) for schema, url in site.db_urls.items()}
    rules = site.rules_file
    settings["rules_text"] = (hashlib.sha256(Path(rules).read_bytes()).hexdigest()
                              if rules is not None and Path(rules).is_file() else None)
    text = json.dumps({"version": __version__, "site": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def saved_state(directory: Path, key: str) -> dict | None:
    """``state.json`` of the saved set if it is of this format and key; None (logged): a cold start."""
    try:
        state = json.loads((Path(directory) / STATE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("live state in %s cannot be read (%s); starting cold", directory, err)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("key") != key:
        log.info("live state in %s is from another version or other site settings; starting cold", directory)
        return None
    return state


def published(directory: Path, key: str) -> RenderedUsage | None:
    """The values served before the stop, ready for a scrape (None: a cold start)."""
    if saved_state(directory, key) is None:
        return None
    try:
        values = json.loads((Path(directory) / PUBLISHED).read_text())
        return RenderedUsage(
            at=dt.datetime.fromisoformat(values["at"]),
            gauges=_series(values["gauges"]),
            counters=_series(values["counters"]),
            counter_frame=None,
            counters_held=int(values["counters_held"]),
            families={name: tuple((tuple(row[:-1]), row[-1]) for row in rows)
                      for name, rows in values["families"].items()},
            disabled=tuple((node_type, value) for node_type, value in values["disabled"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("live state in %s is incomplete (%s); starting cold", directory, err)
        return None


def published_text(usage: RenderedUsage) -> str:
    """``published.json`` of what a scrape renders now (floats round-trip exactly through JSON)."""
    return json.dumps({
        "at": usage.at.isoformat(),
        "counters_held": usage.counters_held,
        "gauges": _rows(usage.gauges),
        "counters": _rows(usage.counters),
        "families": {name: [[*labels, value] for labels, value in rows] for name, rows in sorted(usage.families.items())},
        "disabled": [list(row) for row in usage.disabled],
    }, sort_keys=True) + "\n"


def _rows(by_resource: dict) -> dict[str, list]:
    return {resource: [[*labels, value] for labels, value in series] for resource, series in sorted(by_resource.items())}


def _series(by_resource: dict) -> dict[str, tuple]:
    return {resource: tuple((tuple(row[:-1]), row[-1]) for row in rows) for resource, rows in by_resource.items()}
