"""The command line as an operator meets it: every subcommand helps, errors are one clean line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from exporter.cli import COMMANDS, cli


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (exercises exporter.cli.main)."""
    return subprocess.run(
        [sys.executable, "-c", "from exporter.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_every_planned_subcommand_is_installed():
    assert sorted(cli.list_commands(None)) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help_with_a_description(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # a real description, not just the option list
    description = result.output.split("Options:")[0].split("\n", 2)[-1].strip()
    assert len(description) > 20, f"{name} --help has no description"


def test_unknown_config_file_is_one_line_without_traceback(tmp_path):
    result = run_cli("extract", "--site", "nowhere", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "missing.yaml" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_database_password_is_not_printed(tmp_path):
    result = run_cli("extract", "--db-url", "mysql+pymysql://root:s3cretpw@127.0.0.1:1/", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "s3cretpw" not in result.stderr + result.stdout


def test_cli_works_when_nothing_else_imported_importlib_util():
    """A plain (non -e) install has no editable finder that imports importlib.util for us."""
    forget_util = ("import sys, importlib; sys.modules.pop('importlib.util', None); "
                   "hasattr(importlib, 'util') and delattr(importlib, 'util'); "
                   "from exporter.cli import main; main(['plot', '--help'])")
    result = subprocess.run([sys.executable, "-c", forget_util], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
