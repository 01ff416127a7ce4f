"""The command line as an operator meets it: every subcommand helps, errors are one clean line."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from exporter.cli import COMMANDS, cli
from tests.backfill.timelines import synthetic_timeline, write_timeline


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


def test_the_exit_does_not_collect_the_heap_again():
    """The command ends with everything written: the interpreter's last collections, which only
    walked the whole heap the OS takes back anyway, are skipped (gc.freeze at exit). A cycle left
    for the collector is not collected at exit, here after main ran twice."""
    probe = ("import gc, os\nfrom exporter.cli import main\n"
             "class Loud:\n    def __del__(self, write=os.write):\n        write(1, b'collected at exit')\n"
             "gc.disable()\nloop = Loud()\nloop.self = loop\ndel loop\n"
             "for _ in range(2):\n    try:\n        main(['plot', '--help'])\n    except SystemExit:\n        pass\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert "collected at exit" not in done.stdout


@pytest.mark.parametrize("preset", [None, "narenas:1", "dirty_decay_ms:500,muzzy_decay_ms:1000"])
def test_backfill_keeps_polars_freed_memory(preset):
    """The allocator setting is in the environment, last, before polars first loads (polars puts its
    defaults first; jemalloc takes the last value of each option); also when a parent that imported
    polars passed its defaults down. The backfill command's options (cli.options.history_settings
    imports stage_options) load no reconstruct pipeline: ~0.08 s of start-up (56946b4), and no yaml
    without --site (~0.01 s, BENCHMARKS.md session 12)."""
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if preset:
        env["_RJEM_MALLOC_CONF"] = preset
    probe = ("import os, sys\nfrom exporter.cli import cli\nassert 'polars' not in sys.modules\n"
             "cli.get_command(None, 'backfill')\ncli.get_command(None, 'backfill')\nimport polars\n"
             "import exporter.cli.options, exporter.stage_options, exporter.backfill.blocks, exporter.backfill.report\n"
             "assert 'exporter.reconstruct.pipeline' not in sys.modules\n"
             "assert 'yaml' not in sys.modules\n"
             "print(os.environ.get('_RJEM_MALLOC_CONF'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(",dirty_decay_ms:-1,muzzy_decay_ms:-1")
    assert preset is None or preset in done.stdout
    assert done.stdout.count("dirty_decay_ms:-1") == 1  # a second lookup does not append it again


@pytest.mark.parametrize("preset", [None, "2"])
def test_backfill_starts_no_blas_threads_unless_asked(preset):
    """numpy loads after the command is looked up: OpenBLAS then reads one thread and starts none
    of its own (they spin at start; on one core it would start none anyway), unless the environment
    already says how many."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset:
        env["OPENBLAS_NUM_THREADS"] = preset
    probe = ("import os, sys\nfrom exporter.cli import cli\nassert 'numpy' not in sys.modules\n"
             "cli.get_command(None, 'backfill')\nbefore = len(os.listdir('/proc/self/task'))\nimport numpy\n"
             "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')) - before)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    value, started = done.stdout.split()
    assert value == (preset or "1")
    if preset is None:
        assert started == "0"


# What other commands load (databases, the live exporter, Arrow readers, yaml, plots): the
# backfill command reads only a parquet timeline, and each of these costs start-up CPU before its
# first promtool can start (BENCHMARKS.md session 13, imports).
NOT_FOR_BACKFILL = ("sqlalchemy", "pymysql", "prometheus_client", "pyarrow", "connectorx", "yaml", "matplotlib",
                    "exporter.db", "exporter.extract", "exporter.reconstruct.pipeline")


def test_a_backfill_run_loads_no_other_commands_libraries(tmp_path):
    """The whole command, run for real (without promtool), then the modules it left loaded."""
    timeline = write_timeline(synthetic_timeline(start=dt.datetime(2024, 1, 1), hours=48), tmp_path / "tl")
    probe = ("import sys\nfrom exporter.cli import main\n"
             f"main(['backfill', {str(timeline)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet'])\n"
             f"print(sorted(name for name in sys.modules if name.startswith({NOT_FOR_BACKFILL!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "backfill.json").exists()  # it did run, past the options
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_one_sites_unset_variable_blocks_only_that_site(tmp_path):
    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n"
                      f"  ok:\n    db_url: sqlite:///{tmp_path / 'ok.sqlite'}\n"
                      "  locked:\n    db_url: mysql+pymysql://u:${ROBUST_A_UNSET_PW}@127.0.0.1:1/\n")
    other = run_cli("extract", "--site", "ok", "--config", str(config), "--quiet")
    assert other.stderr.strip() == f"error: SQLite database {tmp_path / 'ok.sqlite'} does not exist"  # got to the DB
    grants = run_cli("grants", "--user", "ro", "--host", "%", "--site", "locked", "--config", str(config))
    assert grants.returncode == 0, grants.stderr  # grants never connects: no password needed
    locked = run_cli("extract", "--site", "locked", "--config", str(config))
    assert locked.returncode == 2
    assert locked.stderr.strip() == "error: environment variable ROBUST_A_UNSET_PW is not set (referenced by site 'locked')"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--holdback", "9999999d", "longer than 36500d"),
    ("--holdback", "99999999999w", "longer than 36500d"),
    ("--step", "99999999999999999999s", "longer than 36500d"),
])
def test_huge_durations_are_refused_before_any_arithmetic(tmp_path, option, value, message):
    command = ["backfill", str(tmp_path), "--out", str(tmp_path / "out")] if option == "--holdback" else \
        ["reconstruct", str(tmp_path), "--site", "s", "--out", str(tmp_path / "out")]
    result = run_cli(*command, option, value)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr


@pytest.mark.parametrize("value", ["2024-02-30", "1970-01-01"])
def test_impossible_or_implausible_dates_on_the_command_line(tmp_path, value):
    result = run_cli("reconstruct", str(tmp_path), "--site", "s", "--out", str(tmp_path / "out"), "--from", value)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and f"Invalid value for '--from'" in result.stderr


@pytest.mark.parametrize("value", ["nan", ".inf"])
def test_serve_refuses_a_refresh_interval_that_would_spin_or_stop(tmp_path, value):
    config = tmp_path / "sites.yaml"
    config.write_text(f"sites:\n  s:\n    db_url: sqlite:///{tmp_path / 's.sqlite'}\n    refresh_interval: {value}\n")
    result = run_cli("serve", "--config", str(config), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: sites.s.refresh_interval must be a number from 1 to 86400 (seconds), got")


def test_run_on_a_given_snapshot_needs_no_database_password(tmp_path):
    from tests.reconstruct.test_reconstruct import small_site, write_snapshot

    snapshot = write_snapshot(tmp_path / "snap", small_site())
    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n  locked:\n"
                      "    db_url: mysql+pymysql://u:${ROBUST_A_UNSET_PW}@127.0.0.1:1/\n    history_start: 2020-01-01\n")
    result = run_cli("run", "--site", "locked", "--config", str(config), "--snapshot", str(snapshot),
                     "--no-blocks", "--quiet", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "timeline" / "timeline.parquet").exists()
