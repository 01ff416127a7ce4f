"""Ids only joined on (exporter.adapters.common.JOIN_ID): one dtype across a table and its shadow_ archive."""

from __future__ import annotations

import polars as pl
import pytest

from exporter.adapters import common

MAIN, SHADOW = "nova.instance_actions", "nova.shadow_instance_actions"


@pytest.mark.parametrize(("main_dtype", "shadow_dtype", "expected"), [
    (pl.Int64, pl.Int64, pl.Int64),
    (pl.Int32, pl.Float64, pl.Int64),  # numbers of any width: integers
    (pl.Int64, pl.String, pl.String),  # a dump's text on one side: both as text
    (pl.UInt64, pl.Int64, pl.String),  # UInt64 may not fit an Int64: read as text
])
def test_a_table_and_its_archive_stack_with_one_id_dtype(main_dtype, shadow_dtype, expected):
    tables = {MAIN: pl.DataFrame({"id": [7]}).lazy().with_columns(pl.col("id").cast(main_dtype)),
              SHADOW: pl.DataFrame({"id": [7, 8]}).lazy().with_columns(pl.col("id").cast(shadow_dtype))}
    rows = common.typed_union(tables, (MAIN, SHADOW), {"id": common.JOIN_ID}).collect()
    assert rows.schema["id"] == expected
    assert rows.select(pl.col("id").cast(pl.String), "source_table", "shadow_twin").rows() == [
        ("7", MAIN, False), ("7", SHADOW, True), ("8", SHADOW, False)]


def test_an_absent_id_column_is_an_integer_null():
    tables = {MAIN: pl.DataFrame({"action": ["stop"]}).lazy(), SHADOW: pl.DataFrame({"id": [3]}).lazy()}
    rows = common.typed_union(tables, (MAIN, SHADOW), {"id": common.JOIN_ID}).collect()
    assert rows.schema["id"] == pl.Int64 and rows.get_column("id").to_list() == [None, 3]
