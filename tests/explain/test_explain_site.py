"""explain on generated sites, through the CLI and a running exporter's /explain.

Property: for random (series, time) pairs the contributions add up to the timeline's value, and
every span evidenced by a database row names a row that exists in its snapshot table (rule and
inferred spans cite their rule or evidence instead). HTTP: /explain answers history with the
CLI's JSON and the present with contributions that add up to the served gauge.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from exporter.cli import cli
from exporter.config import SiteConfig
from exporter.explain import Selection, explain_output, history_grid
from exporter.extract.copy import extract_snapshot
from exporter.reconstruct.inference import SOURCE as INFERENCE_SOURCE
from exporter.live import LiveExporter
from exporter.live.source import LiveSite
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_to_directory
from exporter.reconstruct.rulesfile import RULES_SOURCE
from exporter.columns import POOLS, STATES, TIMELINE_RESOURCES
from exporter.sitegen import generate_site
from exporter.adapters.registry import declared_tables
from tests import support
from tests.live.support import wait_for

SEEDS = (3, 4)
_SITES: dict[int, tuple[Path, Path, SiteConfig]] = {}


@pytest.fixture(scope="module")
def site_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("explain-sites")


def built_site(root: Path, seed: int) -> tuple[Path, Path, SiteConfig]:
    """(snapshot dir, reconstruct output, site config) of a small generated site ending today."""
    if seed not in _SITES:
        start = dt.datetime.combine(dt.date.today() - dt.timedelta(days=120), dt.time())
        where = root / f"site{seed}"
        generated = generate_site(f"sqlite:///{where}/site.sqlite", hosts=5, years=120 / 365, seed=seed, start=start,
                                  truth_dir=where / "truth")
        config = SiteConfig(name=f"ex{seed}", display_name="explain", db_url=generated.url,
                            databases=generated.databases, history_start=start, history_dir=where / "out")
        snapshot = extract_snapshot(config, where / "data", snapshot_id="s").snapshot_dir
        reconstruct_to_directory(snapshot, ReconstructOptions(site=config.name, start=start), where / "out")
        _SITES[seed] = (snapshot, where / "out", config)
    return _SITES[seed]


def selection_strategy(site: str):
    return st.builds(
        Selection, site=st.just(site),
        node_types=st.one_of(st.none(), st.sets(st.sampled_from(["compute_haswell", "compute_skylake", "gpu_p100",
                                                                  "unknown"]), min_size=1).map(tuple)),
        pools=st.one_of(st.none(), st.sets(st.sampled_from(POOLS), min_size=1).map(tuple)),
        states=st.one_of(st.none(), st.sets(st.sampled_from(STATES), min_size=1).map(tuple)),
        resource=st.sampled_from(sorted(TIMELINE_RESOURCES)))


def existing_ids(snapshot: Path) -> dict[str, set[str]]:
    keys = {source.name: source.primary_key for source in declared_tables()}
    return {path.stem: set(pl.read_parquet(path, columns=[keys[path.stem]]).get_column(keys[path.stem])
                           .cast(pl.String).to_list())
            for path in snapshot.glob("*.parquet") if path.stem in keys}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_contributions_add_up_and_cite_existing_rows(site_root, data):
    snapshot, out, config = built_site(site_root, data.draw(st.sampled_from(SEEDS)))
    grid = history_grid(out)
    at = grid.start + dt.timedelta(seconds=data.draw(st.integers(0, int((grid.cells * grid.step).total_seconds()) - 1)))
    result = explain_output(out, at, data.draw(selection_strategy(config.name)))
    scale = math.fsum(abs(span["contribution"]) for span in result["spans"])
    assert math.isclose(result["contributions_sum"], result["value"], rel_tol=1e-12, abs_tol=1e-9 * max(1.0, scale))
    ids = existing_ids(snapshot)
    for span in result["spans"]:
        if span["source_table"] == RULES_SOURCE:
            assert span["rule_id"] == span["source_id"]
        elif span["source_table"] != INFERENCE_SOURCE:
            assert span["source_id"] in ids[span["source_table"]], span


def test_cli_table_and_json(site_root):
    _, out, config = built_site(site_root, SEEDS[0])
    at = history_grid(out).start + dt.timedelta(days=30, minutes=20)
    table = CliRunner().invoke(cli, ["explain", str(out), "--at", at.isoformat(), "--pool", "reservable"])
    assert table.exit_code == 0, table.output
    assert "value" in table.output and "= reservable" in table.output
    as_json = CliRunner().invoke(cli, ["explain", str(out), "--at", at.isoformat(), "--json", "--state", "idle"])
    assert json.loads(as_json.output)["formula"]["text"] == "committed - occupied.reservation"
    outside = CliRunner().invoke(cli, ["explain", str(out), "--at", "2001-01-01"])
    assert outside.exit_code == 1 and "outside the timeline" in str(outside.exception)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def served_gauge(base: str, site: str, state: str) -> float:
    _, text = get(f"{base}/metrics")
    prefix = f'openstack_usage_nodes{{'
    return math.fsum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith(prefix) and f'site="{site}"' in line and f'state="{state}"' in line)


def test_http_explain_history_is_the_cli_json_and_present_adds_up_to_the_gauge(site_root):
    _, out, config = built_site(site_root, SEEDS[0])
    live = LiveSite(config)
    exporter = LiveExporter({config.name: (live, 3600.0)}, listen=f"127.0.0.1:{support.free_port()}",
                            histories={config.name: out})
    with exporter:
        base = exporter.url
        refresher = exporter.refreshers[config.name]
        wait_for(lambda: refresher.refreshes > 0, timeout=120, what="first refresh")
        at = history_grid(out).start + dt.timedelta(days=40, hours=5, minutes=7)
        query = f"site={config.name}&at={at.isoformat()}&pool=reservable&state=idle,active&limit=5"
        status, body = get(f"{base}/explain?{query}")
        assert status == 200, body
        cli_json = CliRunner().invoke(cli, ["explain", str(out), "--at", at.isoformat(), "--pool", "reservable",
                                            "--state", "idle,active", "--limit", "5", "--json"]).output
        assert json.loads(body) == json.loads(cli_json)
        status, body = get(f"{base}/explain?site={config.name}&at=now&state=active")
        present = json.loads(body)
        assert status == 200 and present["source"] == "live"
        assert math.isclose(present["contributions_sum"], present["value"], abs_tol=1e-9)
        assert math.isclose(present["value"], served_gauge(base, config.name, "active"), abs_tol=1e-9)
        epoch_ms = int((at - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
        assert json.loads(get(f"{base}/explain?site={config.name}&at={epoch_ms}")[1])["cell"]["start"] == \
            at.replace(minute=0).isoformat()
        for bad in ("bogus=1", "at=yesterday", "pool=everything", "site=nowhere", "limit=0", "state=idle&state=active",
                    "at=2001-01-01"):
            status, body = get(f"{base}/explain?site={config.name}&{bad}" if "site=" not in bad
                               else f"{base}/explain?{bad}")
            assert status == 400 and body.count("\n") == 1, (bad, body)
        request = urllib.request.Request(f"{base}/explain?at=now", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
