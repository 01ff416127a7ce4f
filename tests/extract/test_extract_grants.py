"""Least-privilege grants and the shared progress reporter."""

from __future__ import annotations

import io
import re

from click.testing import CliRunner

from exporter.cli import cli
from exporter.config import prefixed_databases
from exporter.extract.copy import grant_statements
from exporter.progress import Progress, for_cli
from exporter.adapters.registry import declared_tables

GRANT = re.compile(r"^GRANT SELECT ON `([^`]+)`\.`([^`]+)` TO 'ro'@'10\.0\.0\.5'$")


def test_grants_cover_exactly_the_declared_tables_with_physical_names():
    statements = grant_statements("ro", "10.0.0.5", {"nova": "cell1_nova", "blazar": "blazar_prod"})
    targets = [GRANT.match(statement).groups() for statement in statements]
    physical = {"nova": "cell1_nova", "blazar": "blazar_prod"}
    expected = {(physical.get(s.schema, s.schema), s.table) for s in declared_tables()}
    assert len(targets) == len(expected) and set(targets) == expected
    # required tables first, so `mysql` without --force applies all of them before any optional one fails
    optional_of = {(physical.get(s.schema, s.schema), s.table): s.optional for s in declared_tables()}
    flags = [optional_of[target] for target in targets]
    assert flags == sorted(flags) and True in flags


def test_grant_accounts_are_quoted():
    statement = grant_statements("o'brien", "%", prefixed_databases("t1_"))[0]
    assert statement.endswith("TO 'o''brien'@'%'")
    assert "`t1_" in statement


def test_grants_command_prints_semicolon_terminated_statements():
    result = CliRunner().invoke(cli, ["grants", "--user", "ro", "--host", "10.0.0.5", "--db-prefix", "p_"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("GRANT")]
    assert len(lines) == len(declared_tables())
    assert all(line.endswith(";") and "`p_" in line for line in lines)


def test_progress_shows_stage_labels_only_when_enabled():
    shown = io.StringIO()
    progress = Progress(enabled=True, stages=2, file=shown)
    with progress.stage("extract", total=3) as bar:
        bar.item("nova.instances")
        bar.advance()
    with progress.stage("reconstruct") as bar:
        bar.advance()
    assert "stage 1/2: extract" in shown.getvalue()
    assert "stage 2/2: reconstruct" in shown.getvalue()
    hidden = io.StringIO()
    with Progress(enabled=False, file=hidden).stage("extract", total=1) as bar:
        bar.advance()
    assert hidden.getvalue() == ""
    assert for_cli(quiet=True).enabled is False
