import os

import polars as pl

from exporter.cli import main
from exporter.engine.plans import AFFINITY


def _run_main(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit:
        pass


def test_the_command_line_runs_plans_that_name_no_engine_in_memory(monkeypatch) -> None:
    monkeypatch.delenv(AFFINITY, raising=False)
    _run_main("--version")
    assert os.environ.get(AFFINITY) == "in-memory"


def test_the_engine_is_the_command_lines_whatever_the_environment_says(monkeypatch) -> None:
    monkeypatch.setenv(AFFINITY, "streaming")  # the engine changes output bytes: no outside say
    _run_main("--version")
    assert os.environ[AFFINITY] == "in-memory"
    assert pl.Config.state()[AFFINITY] == "in-memory"
