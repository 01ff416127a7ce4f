"""What `serve` loads before it answers (exporter.live.late): a restarted exporter serves its saved
values (exporter.live.warm) from the standard library, click, yaml and prometheus-client alone —
no polars, SQLAlchemy, database driver or reconstruct engine is imported until the sites open.

Each case runs in a fresh interpreter (this one has imported everything already): it builds the
exporter for a config whose site has a saved state, starts only its server, scrapes it and reports
what it got and every module it had imported by then.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load_config
from exporter.live.state import RenderedUsage
from exporter.live.warm import FORMAT, PUBLISHED, STATE, STATE_DIR, published_text, state_key

# top-level packages and package modules that compute; none may be loaded before the first scrape
HEAVY = ("polars", "pyarrow", "numpy", "pandas", "sqlalchemy", "pymysql", "connectorx", "exporter.db",
         "exporter.engine", "exporter.adapters", "exporter.extract", "exporter.reconstruct", "exporter.explain",
         "exporter.live.source", "exporter.live.render", "exporter.live.warmset", "exporter.live.explain")
SERVE_ONCE = """
import json, sys, urllib.request
from exporter.config import load_config
from exporter.live import LiveExporter, site_computations
exporter = LiveExporter(site_computations(load_config(sys.argv[1])), listen="127.0.0.1:0")
exporter.server.start()
with urllib.request.urlopen(exporter.url + "/metrics", timeout=30) as response:
    body = response.read().decode()
exporter.server.stop()
print(json.dumps({"body": body, "modules": sorted(sys.modules)}))
"""
AT = dt.datetime(2026, 11, 30, 9, 0, 0)
SAVED = RenderedUsage(
    at=AT, gauges={"nodes": ((("compute_skylake", "reservable", "available"), 3.0),)},
    counters={"nodes": ((("compute_skylake", "reservable", "available"), 7200.5),)}, counter_frame=None,
    counters_held=0,
    families={"openstack_usage_booked_ahead_nodes": ((("s", "compute_skylake", "7d"), 1.25),)},
    disabled=(("compute_skylake", 1.0),))


def _config(tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "sites": {"s": {
        # never opened here: the server alone runs
        "db_url": "mysql+pymysql://reader:secret@127.0.0.1:1/", "history_start": "2026-01-01"}}}))
    return path


def _save(tmp_path, config_path) -> None:
    directory = tmp_path / "data" / "s" / STATE_DIR
    directory.mkdir(parents=True)
    key = state_key(load_config(config_path).site("s"))
    (directory / STATE).write_text(json.dumps({"format": FORMAT, "key": key}))
    (directory / PUBLISHED).write_text(published_text(SAVED))


def _serve_once(config_path) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", SERVE_ONCE, str(config_path)], capture_output=True, text=True,
                          timeout=120, check=True)
    answer = json.loads(done.stdout)
    return answer["body"], answer["modules"]


def _samples(body: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_a_restart_serves_the_saved_values_before_importing_anything_that_computes(tmp_path):
    config_path = _config(tmp_path)
    _save(tmp_path, config_path)
    body, modules = _serve_once(config_path)
    served = _samples(body)
    skylake = (("node_type", "compute_skylake"), ("pool", "reservable"), ("site", "s"), ("state", "available"))
    assert served[("openstack_usage_nodes", skylake)] == 3.0
    assert served[("openstack_usage_node_seconds_total", skylake)] == 7200.5
    assert served[("openstack_usage_booked_ahead_nodes",
                   (("horizon", "7d"), ("node_type", "compute_skylake"), ("site", "s")))] == 1.25
    assert served[("openstack_usage_host_disabled", (("node_type", "compute_skylake"), ("site", "s")))] == 1.0
    assert served[("openstack_usage_up", (("site", "s"),))] == 1.0
    assert served[("openstack_usage_last_refresh_timestamp_seconds", (("site", "s"),))] == \
        (AT - dt.datetime(1970, 1, 1)).total_seconds()
    assert _heavy(modules) == []


def test_without_a_saved_state_nothing_is_served_and_nothing_heavy_is_loaded_either(tmp_path):
    body, modules = _serve_once(_config(tmp_path))
    assert "openstack_usage_nodes{" not in body and 'openstack_usage_up{site="s"} 0.0' in body
    assert _heavy(modules) == []
