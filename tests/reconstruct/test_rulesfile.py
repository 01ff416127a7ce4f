"""The rules file: what it accepts, and one clear line for everything it refuses."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from exporter.columns import CONFIDENCES
from exporter.errors import ConfigError
from exporter.reconstruct.rulesfile import ACTIONS, load_rules, parse_rules

PROVENANCE = "provenance: {author: ops, date: 2024-05-02, reason: racked but never cabled}"


def rules_text(*bodies: str) -> str:
    items = "\n".join("  - " + textwrap.indent(textwrap.dedent(body).strip(), "    ").lstrip() for body in bodies)
    return "rules:\n" + items + "\n"


EXCLUDE = f"""
id: never-usable
site: chi
match: {{hypervisor_hostname: node-7}}
from: 2024-01-01
to: 2024-02-01
action: exclude
confidence: direct
{PROVENANCE}
"""


def test_a_valid_rule_is_read_with_its_window_match_and_provenance():
    (rule,) = parse_rules(rules_text(EXCLUDE))
    assert rule.id == "never-usable" and rule.action == "exclude" and rule.site == "chi"
    assert rule.start == dt.datetime(2024, 1, 1) and rule.end == dt.datetime(2024, 2, 1)
    assert rule.matched("hypervisor_hostname") == ("node-7",) and rule.matched("project_id") is None
    assert rule.provenance.author == "ops" and rule.provenance.date == dt.date(2024, 5, 2)


def test_open_ranges_lists_and_values():
    (pool, add) = parse_rules(rules_text(
        f"""
        id: ondemand-rack
        site: chi
        match: {{hypervisor_hostname: [b, a]}}
        to: 2023-01-01
        action: set_pool
        pool: ondemand
        confidence: inferred
        {PROVENANCE}
        """,
        f"""
        id: forgotten
        site: chi
        match: {{hypervisor_hostname: ghost}}
        from: 2022-03-01T06:00
        action: add_host
        node_type: compute_skylake
        resources: {{vcpus: 48, memory_mb: 196608}}
        confidence: assumed
        {PROVENANCE}
        """))
    assert pool.start is None and pool.end == dt.datetime(2023, 1, 1) and pool.value == "ondemand"
    assert pool.matched("hypervisor_hostname") == ("a", "b")
    assert add.end is None and add.value == "compute_skylake" and dict(add.resources)["vcpus"] == 48.0


def test_an_empty_file_holds_no_rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("# nothing yet\n")
    assert load_rules(path) == ()


@pytest.mark.parametrize("change, message", [
    (("action: exclude", "action: ignore"), "rule 'never-usable': unknown action 'ignore'"),
    (("confidence: direct", "confidence: direct\nweight: 3"), "unknown key(s) weight"),
    (("match: {hypervisor_hostname: node-7}", "match: {hostname: node-7}"), "match: unknown key(s) hostname"),
    (("to: 2024-02-01", "to: 2023-12-01"), "'to' (2023-12-01 00:00:00) is not after 'from'"),
    (("from: 2024-01-01", "from: January"), "from: 'January' is not a date"),
    (("from: 2024-01-01", "from: 2024-02-30"), "from: '2024-02-30' is not a date"),  # a day that does not exist
    (("date: 2024-05-02", "date: 2024-13-02"), "provenance.date: '2024-13-02' is not a date"),
    (("confidence: direct", "confidence: sure"), "confidence must be one of direct, inferred, assumed"),
    (("confidence: direct", "confidence: high"), "not 'high' (use 'direct': rules share the spans' confidence"),
    (("site: chi\n", ""), "missing site"),
    (("match: {hypervisor_hostname: node-7}\n", ""), "exclude needs a match"),
    (("match: {hypervisor_hostname: node-7}", "match: {source_id: '12'}"), "match.source_id needs match.source_table"),
    (("reason: racked but never cabled", "reference: x"), "provenance needs reason"),
])
def test_a_bad_rule_is_one_clear_line(change, message):
    old, new = change
    text = rules_text(EXCLUDE.replace(old, new))
    with pytest.raises(ConfigError) as err:
        parse_rules(text, where="rules file etc/rules.yaml")
    line = str(err.value)
    assert message in line and "\n" not in line and line.startswith("rules file etc/rules.yaml")


def test_duplicate_ids_and_broken_yaml_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="rule id.s. used twice: never-usable"):
        parse_rules(rules_text(EXCLUDE, EXCLUDE))
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"rules file .*rules.yaml: line \d+ is not valid YAML"):
        load_rules(path)
    with pytest.raises(ConfigError, match="not found"):
        load_rules(tmp_path / "absent.yaml")


def pool_rule(rule_id: str, pool: str, hosts: str, start: str, end: str) -> str:
    return f"""
    id: {rule_id}
    site: chi
    match: {{hypervisor_hostname: {hosts}}}
    from: {start}
    to: {end}
    action: set_pool
    pool: {pool}
    confidence: direct
    {PROVENANCE}
    """


def test_overlapping_contradictory_rules_are_an_error():
    with pytest.raises(ConfigError, match="rules 'a' and 'b' contradict each other"):
        parse_rules(rules_text(pool_rule("a", "ondemand", "[n1, n2]", "2024-01-01", "2024-03-01"),
                               pool_rule("b", "reservable", "n2", "2024-02-01", "2024-04-01")))
    excluded_and_added = EXCLUDE + "", f"""
    id: added
    site: chi
    match: {{hypervisor_hostname: node-7}}
    from: 2024-01-15
    action: add_host
    confidence: assumed
    {PROVENANCE}
    """
    with pytest.raises(ConfigError, match="exclude vs add_host"):
        parse_rules(rules_text(*excluded_and_added))


def test_rules_that_agree_or_do_not_meet_are_fine():
    parse_rules(rules_text(pool_rule("a", "ondemand", "n1", "2024-01-01", "2024-03-01"),
                           pool_rule("b", "reservable", "n1", "2024-03-01", "2024-04-01"),
                           pool_rule("c", "reservable", "n2", "2024-01-01", "2024-04-01"),
                           pool_rule("d", "ondemand", "n1", "2024-02-01", "2024-02-15")))


def test_the_shipped_example_is_valid_shows_every_action_and_is_referenced_from_the_sites_file():
    etc = Path(__file__).resolve().parents[2] / "etc"
    rules = load_rules(etc / "rules.yaml")
    assert {rule.action for rule in rules} == set(ACTIONS)
    assert {rule.confidence for rule in rules} == set(CONFIDENCES)
    assert all(rule.provenance.reason for rule in rules)
    assert "  #   rules: rules.yaml" in (etc / "sites.yaml").read_text().splitlines()
