"""The live /metrics exposition's exact bytes for a fixed site state (tests/live/golden/).

Both formats a scrape can ask for: OpenMetrics and the Prometheus text format. Reviewed by hand
when written: gauges are the state's levels, counters its integrals, health metrics its refresh
record. `pytest --update-golden` rewrites the files after an intended change.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.live.collector import UsageCollector
from exporter.live.render import USAGE_SCHEMA, rendered
from exporter.live.state import SiteState, Usage

GOLDEN = Path(__file__).parent / "golden"
AT = dt.datetime(2024, 1, 1, 12)


def usage_frame(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=USAGE_SCHEMA, orient="row")


def fixed_registry() -> CollectorRegistry:
    usage = Usage(at=AT,
                  gauges=usage_frame([("gpu_a100", "reservable", "active", "nodes", 3.0),
                                      ("gpu_a100", "reservable", "idle", "nodes", 1.0),
                                      ("gpu_a100", "reservable", "active", "vcpus", 144.0)]),
                  counters=usage_frame([("gpu_a100", "reservable", "active", "nodes", 3.0 * 7200),
                                        ("gpu_a100", "reservable", "idle", "nodes", 3600.0),
                                        ("gpu_a100", "reservable", "active", "vcpus", 144.0 * 7200)]),
                  disabled=pl.DataFrame({"node_type": ["gpu_a100"], "value": [1.0]}))
    state = SiteState(site="uc", usage=rendered(usage, None), up=True, last_success=1704110400.0, duration=0.25,
                      errors=(("timeout", 2),))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(lambda: [state, SiteState(site="down")], version="9.9"))
    return registry


def test_openmetrics_exposition_is_exactly_the_golden_document(golden):
    golden(GOLDEN / "exposition.om", generate_openmetrics(fixed_registry()))


def test_prometheus_text_exposition_is_exactly_the_golden_document(golden):
    golden(GOLDEN / "exposition.prom", generate_latest(fixed_registry()))
