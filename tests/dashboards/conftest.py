"""The real Prometheus with backfilled + scraped demo data, built once for every dashboard test."""

from __future__ import annotations

import pytest

from tests.dashboards.data import DemoData, build_demo_data


@pytest.fixture(scope="package")
def demo(tmp_path_factory, promtool, prometheus_bin) -> DemoData:
    with build_demo_data(tmp_path_factory.mktemp("dash"), promtool=promtool) as data:
        yield data
