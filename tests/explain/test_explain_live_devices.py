"""``/explain`` of an edge site's devices family on a running exporter, history and present.

A generated CHI@Edge site (devices, Zun, no Nova) served by the real live exporter over its
SQLite database: ``resource=devices`` in the history answers exactly what ``usage-exporter
explain --resource devices --json`` answers; at ``now`` the answer is the served
``openstack_usage_devices`` gauge, summed from the device spans the exporter kept, for every
(machine_name, pool, state) it serves. The knowledge-time lenses are refused in one line.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import cli
from exporter.config import SiteConfig
from exporter.explain import history_grid
from exporter.extract.copy import extract_snapshot
from exporter.live import LiveExporter
from exporter.live.source import LiveSite
from exporter.metrics import DEVICES
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_to_directory
from exporter.sitegen import generate_site
from tests import support
from tests.explain.test_explain_site import get
from tests.live.support import wait_for

DAYS = 20


@pytest.fixture(scope="module")
def edge_site(tmp_path_factory):
    """(site config with history_dir, reconstruct output) of a small generated edge site ending now."""
    root = tmp_path_factory.mktemp("explain-edge")
    start = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=DAYS)).replace(
        minute=0, second=0, microsecond=0)
    generated = generate_site(f"sqlite:///{root}/edge.sqlite", hosts=8, years=DAYS / 365, seed=5, start=start,
                              truth_dir=root / "truth", kind="edge", quirks=set())
    config = SiteConfig(name="edge", display_name="edge", db_url=generated.url, databases=generated.databases,
                        kind="edge", history_start=start, history_dir=root / "out")
    snapshot = extract_snapshot(config, root / "data", snapshot_id="s").snapshot_dir
    reconstruct_to_directory(snapshot, ReconstructOptions(site=config.name, start=start), root / "out")
    return config, root / "out"


def served_devices(base: str) -> dict[tuple[str, str, str], float]:
    """{(machine_name, pool, state): value} of the served devices gauge."""
    _, text = get(f"{base}/metrics")
    [family] = [f for f in text_string_to_metric_families(text) if f.name == DEVICES.name]
    return {(s.labels["machine_name"], s.labels["pool"], s.labels["state"]): s.value for s in family.samples}


def test_devices_explained_from_history_and_from_the_present(edge_site):
    config, out = edge_site
    with LiveExporter({config.name: (LiveSite(config), 3600.0)}, listen=f"127.0.0.1:{support.free_port()}",
                      histories={config.name: out}) as exporter:
        base = exporter.url
        refresher = exporter.refreshers[config.name]
        wait_for(lambda: refresher.refreshes > 0, timeout=120, what="first refresh")
        assert refresher.state.up

        # history: the CLI's answer, byte for byte as JSON
        at = history_grid(out).start + dt.timedelta(days=DAYS // 2, minutes=13)
        status, body = get(f"{base}/explain?site=edge&at={at.isoformat()}&resource=devices&pool=reservable&limit=5")
        assert status == 200, body
        cli_json = CliRunner().invoke(cli, ["explain", str(out), "--at", at.isoformat(), "--resource", "devices",
                                            "--pool", "reservable", "--limit", "5", "--json"]).output
        assert json.loads(body) == json.loads(cli_json) and json.loads(body)["family"] == DEVICES.name

        # the present: every served series, and their sums by state and by machine_name
        served = served_devices(base)
        assert served and sum(served.values()) > 0
        by_state, by_model = defaultdict(float), defaultdict(float)
        for (model, pool, state), value in served.items():
            by_state[state] += value
            by_model[model] += value
        queries = [(f"node_type={model}&pool={pool}&state={state}", value)
                   for (model, pool, state), value in served.items()]
        queries += [(f"state={state}", value) for state, value in by_state.items()]
        queries += [(f"node_type={model}", value) for model, value in by_model.items()]
        cited = set()
        for query, value in queries:
            status, body = get(f"{base}/explain?site=edge&at=now&resource=devices&{query}")
            assert status == 200, (query, body)
            answer = json.loads(body)
            assert answer["source"] == "live" and answer["family"] == DEVICES.name
            assert answer["value"] == pytest.approx(value, abs=1e-9), query
            assert math.isclose(answer["contributions_sum"], answer["value"], abs_tol=1e-9), query
            cited |= {span["source_table"] for span in answer["spans"]}
            assert all(span["hostname"] for span in answer["spans"]), query  # each span names its device
        assert "blazar.devices" in cited  # the device rows themselves (total, reservable)
        # the counter's stem names the same family (Grafana's $resource for devices panels)
        assert json.loads(get(f"{base}/explain?site=edge&resource=device")[1])["family"] == DEVICES.name

        for refused in ("resource=booked_ahead_nodes", "resource=openstack_usage_lease_lead_time_seconds"):
            status, body = get(f"{base}/explain?site=edge&{refused}")
            assert status == 400 and "knowledge-time lens" in body and body.count("\n") == 1, (refused, body)
