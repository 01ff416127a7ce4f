"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they can fail.

Layering: core <- engine <- adapters/extract <- reconstruct <- explain <- backfill/live <- run/demo/plot <- cli;
engine/ imports nothing OpenStack-specific; no import cycles. The failing cases run the linter on
a copy of the package with one bad import added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``root`` with the contracts in its pyproject.toml."""
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def copy_with(tmp_path: Path, module: str, extra_line: str) -> Path:
    """A copy of the package and its contracts, with ``extra_line`` appended to ``module``."""
    shutil.copytree(REPO / "exporter", tmp_path / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / Path(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + "\n" + extra_line + "\n")
    return tmp_path


def test_the_package_keeps_every_import_contract():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    root = copy_with(tmp_path, "exporter.reconstruct.audit", "from exporter.backfill import openmetrics  # noqa")
    result = lint(root)
    assert result.returncode != 0
    assert "exporter.reconstruct.audit -> exporter.backfill.openmetrics" in result.stdout


def test_explain_sits_below_live_and_above_reconstruct(tmp_path):
    # explain reads reconstruct outputs and is served by live: importing live from it is upward,
    # and so is reconstruct importing explain
    root = copy_with(tmp_path, "exporter.explain.history", "from exporter.live import server  # noqa")
    up_from_explain = lint(root)
    assert up_from_explain.returncode != 0
    assert "exporter.explain.history -> exporter.live.server" in up_from_explain.stdout
    root = copy_with(tmp_path / "second", "exporter.reconstruct.audit", "from exporter.explain import formula  # noqa")
    up_into_explain = lint(root)
    assert up_into_explain.returncode != 0
    assert "exporter.reconstruct.audit -> exporter.explain.formula" in up_into_explain.stdout


def test_engine_importing_openstack_vocabulary_breaks_its_contract(tmp_path):
    root = copy_with(tmp_path, "exporter.engine.resample", "from exporter.columns import LEVELS  # noqa")
    result = lint(root)
    assert result.returncode != 0
    assert "engine/ is generic math: nothing OpenStack-specific BROKEN" in result.stdout


def test_an_import_cycle_breaks_the_acyclic_contract(tmp_path):
    root = copy_with(tmp_path, "exporter.reconstruct.books", "from exporter.reconstruct import audit  # noqa")
    result = lint(root)
    assert result.returncode != 0
    assert "No cycles are allowed in exporter.reconstruct" in result.stdout
