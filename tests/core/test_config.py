"""Site configuration: the documented example, ${ENV} secrets, and clear errors for bad files."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.configvalues import expand_env
from exporter.db import masked
from exporter.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "sites.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    return path


def _example_with_production_site() -> str:
    """The example file with its commented production site uncommented."""
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("  # chi_uc:")
    body = [re.sub(r"^  # ", "  ", line) if line.startswith("  #   ") or line == "  # chi_uc:" else line
            for line in lines[start:]]
    return "\n".join(lines[:start] + [line for line in body if not line.lstrip().startswith("#")]) + "\n"


def test_example_config_loads():
    config = load_config(EXAMPLE, environ={})
    demo = config.site("demo")
    assert demo.db_url == "sqlite:///data/demo-site/site.sqlite"
    assert demo.history_start == dt.datetime(2024, 1, 1)
    assert demo.maintenance_projects == ("maintenance",)
    assert config.data_dir == Path("data")


def test_production_example_expands_secrets_from_the_environment(tmp_path):
    path = _write(tmp_path, _example_with_production_site())
    config = load_config(path, environ={"NOVA_DB_PASSWORD": "n0va-secret", "BLAZAR_DB_PASSWORD": "bl-secret"})
    site = config.site("chi_uc")
    assert site.url_for("nova") == "mysql+pymysql://usage_ro:n0va-secret@db.example.org:3306/"
    assert site.url_for("blazar").startswith("mysql+pymysql://usage_ro:bl-secret@blazar-db")
    assert site.maintenance_projects == ("maintenance", "chameleon-ops")
    assert site.query_timeout == 300 and site.refresh_interval == 120
    assert site.live_holdback_hours == 3  # from defaults
    assert "n0va-secret" not in masked(site.url_for("nova"))


def test_missing_environment_variable_is_named_not_guessed(tmp_path):
    path = _write(tmp_path, _example_with_production_site())
    with pytest.raises(ConfigError, match="BLAZAR_DB_PASSWORD is not set"):
        load_config(path, environ={"NOVA_DB_PASSWORD": "x"}).site("chi_uc")


def test_env_default_and_data_dir_expansion(tmp_path):
    assert expand_env("a${X:-b}c", {}) == "abc"
    assert expand_env("a${X:-b}c", {"X": "y"}) == "ayc"
    path = _write(tmp_path, "data_dir: ${ROOT}/data\nsites:\n  s:\n    db_url: sqlite:///x.sqlite\n")
    assert load_config(path, environ={"ROOT": "/srv"}).data_dir == Path("/srv/data")


@pytest.mark.parametrize(("text", "message"), [
    ("sites: [unclosed\n", r"line \d+ is not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    refresh_intervall: 5\n", "unknown key.*refresh_intervall"),
    ("site:\n  s: {}\n", "unknown key.*site"),
    ("sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    databases: {novaa: x}\n", "unknown schema.*novaa"),
    ("sites:\n  s:\n    display_name: S\n", "needs db_url"),
    ("sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    query_timeout: 0\n", "must be a number from 1 to"),
    ("sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    history_start: someday\n", "not a date"),
    ("sites:\n  s: 5\n", "must be a mapping"),
    ("sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    priority: {host: [nova.instances.node, nova.hosts]}\n",
     r"priority.host: sources must be distinct names from .*\(unknown: nova.hosts\)"),
    ("sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    priority: {flavor: [nova.instances]}\n",
     "unknown level or evidence 'flavor'"),
])
def test_bad_files_give_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), environ={})


def test_a_site_reorders_placement_evidence_and_keeps_the_other_defaults(tmp_path):
    from exporter.priority import DEFAULT_PRIORITY
    path = _write(tmp_path, "sites:\n  s:\n    db_url: sqlite:///x.sqlite\n    priority:\n"
                            "      host: [nova.instance_actions_events.host, nova.instances.node]\n")
    priority = load_config(path, environ={}).site("s").priority
    assert priority["host"] == ("nova.instance_actions_events.host", "nova.instances.node")
    assert {k: v for k, v in priority.items() if k != "host"} == \
        {k: v for k, v in DEFAULT_PRIORITY.items() if k != "host"}
    production = load_config(_write(tmp_path, _example_with_production_site()), environ={
        "NOVA_DB_PASSWORD": "n", "BLAZAR_DB_PASSWORD": "b"}).site("chi_uc").priority
    assert production["host"] == ("nova.instances.node", "nova.instance_actions_events.host", "nova.migrations")


def test_missing_file_and_unknown_site(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    config = load_config(_write(tmp_path, "sites:\n  a:\n    db_url: sqlite:///x.sqlite\n"))
    with pytest.raises(ConfigError, match=r"unknown site 'b' \(configured: a\)"):
        config.site("b")


def test_single_maintenance_project_is_not_split_into_letters(tmp_path):
    path = _write(tmp_path, "sites:\n  a:\n    db_url: sqlite:///x.sqlite\n    maintenance_projects: ops\n")
    assert load_config(path).site("a").maintenance_projects == ("ops",)


SITE = "sites:\n  s:\n    db_url: sqlite:///x.sqlite\n"


@pytest.mark.parametrize(("option", "value"), [
    ("refresh_interval", "nan"), ("refresh_interval", ".inf"), ("refresh_interval", ".nan"),
    ("refresh_interval", "-5"), ("refresh_interval", "1e300"), ("refresh_interval", "true"),
    ("query_timeout", "nan"), ("query_timeout", ".inf"), ("query_timeout", "0"),
    ("live_holdback_hours", "1e300"), ("live_holdback_hours", ".inf"), ("live_holdback_hours", "-1"),
])
def test_every_number_is_finite_and_in_range(tmp_path, option, value):
    path = _write(tmp_path, f"{SITE}    {option}: {value}\n")
    with pytest.raises(ConfigError, match=rf"sites\.s\.{option} must be a number from .* to .*, got"):
        load_config(path, environ={})


@pytest.mark.parametrize("value", ["2024-02-30", "'2024-02-30'", "2024-13-01", "1970-01-01", "2200-01-01",
                                   "2024-02-30T06:00:00"])
def test_every_date_is_valid_and_plausible(tmp_path, value):
    path = _write(tmp_path, f"{SITE}    history_start: {value}\n")
    with pytest.raises(ConfigError, match=r"^sites\.s\.history_start: .*2"):
        load_config(path, environ={})


def test_yaml_dates_and_datetimes_still_load(tmp_path):
    path = _write(tmp_path, f"{SITE}    history_start: 2024-02-29 06:30:00\n")
    assert load_config(path, environ={}).site("s").history_start == dt.datetime(2024, 2, 29, 6, 30)


def test_an_unset_variable_only_blocks_the_site_that_uses_it(tmp_path):
    path = _write(tmp_path, "sites:\n  ok:\n    db_url: sqlite:///x.sqlite\n"
                            "  locked:\n    db_url: mysql+pymysql://u:${LOCKED_PW}@db/\n")
    config = load_config(path, environ={})
    assert config.site("ok").url_for("nova") == "sqlite:///x.sqlite"
    assert sorted(config.site_names) == ["locked", "ok"]
    with pytest.raises(ConfigError, match="LOCKED_PW is not set.*site 'locked'"):
        config.site("locked")


@pytest.mark.parametrize(("value", "expected"), [("2022-05-10", dt.datetime(2022, 5, 10)), ("never", "never"),
                                                  (None, None)])
def test_device_history_complete_since_is_a_date_or_never(tmp_path, value, expected):
    from exporter.reconstruct.rulesfile import site_policy

    line = "" if value is None else f"    device_history_complete_since: {value}\n"
    site = load_config(_write(tmp_path, SITE + line), environ={}).site("s")
    assert site.device_history_complete_since == expected
    assert site_policy(site)["device_history_complete_since"] == expected  # what reconstruct and live take


@pytest.mark.parametrize("key", ["device_history_complete_since", "blazar_complete_since"])
@pytest.mark.parametrize("value", ["nevr", "2022-02-30", "1999-12-31"])
def test_a_bad_complete_since_is_one_clear_line_naming_never(tmp_path, key, value):
    path = _write(tmp_path, f"{SITE}    {key}: {value}\n")
    with pytest.raises(ConfigError, match=rf'^sites\.s\.{key}: [^\n]*; or "never" \(never complete\)$'):
        load_config(path, environ={})
