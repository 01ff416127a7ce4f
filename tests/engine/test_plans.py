import os

import polars as pl

from exporter.engine.plans import in_memory_plans


def test_plans_inside_run_in_memory_and_the_setting_is_restored_after() -> None:
    before = os.environ.get("POLARS_ENGINE_AFFINITY")
    seen = in_memory_plans(lambda: os.environ.get("POLARS_ENGINE_AFFINITY"))()
    assert seen == "in-memory"
    assert os.environ.get("POLARS_ENGINE_AFFINITY") == before


def test_the_setting_is_restored_when_the_call_raises() -> None:
    before = os.environ.get("POLARS_ENGINE_AFFINITY")

    @in_memory_plans
    def failing() -> None:
        pl.LazyFrame({"a": [1]}).select(pl.col("missing")).collect()

    try:
        failing()
    except pl.exceptions.ColumnNotFoundError:
        pass
    assert os.environ.get("POLARS_ENGINE_AFFINITY") == before
