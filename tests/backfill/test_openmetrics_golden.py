"""The OpenMetrics writer's exact bytes for a small fixed timeline (tests/backfill/golden/).

Reviewed by hand when written: every value is the timeline's value at that hour, every counter
the running sum of value x 3600 s from the origin, timestamps in seconds, one family per resource
and `# EOF` last. `pytest --update-golden` rewrites the file after an intended change.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from exporter.backfill.openmetrics import render_openmetrics
from tests.backfill.timelines import synthetic_timeline

GOLDEN = Path(__file__).parent / "golden"
START = dt.datetime(2024, 1, 1)


def test_small_timeline_renders_exactly_the_golden_document(golden):
    timeline = synthetic_timeline(start=START, hours=3, node_types=("gpu_a100",), resources=("nodes", "vcpus"))
    document = render_openmetrics(timeline, job="openstack-usage", instance="golden", origin=START)
    golden(GOLDEN / "small_timeline.om", document)
