"""Small expressions every adapter shares: typed column reads, hours, and rejection frames.

Snapshot tables arrive with whatever dtypes the extractor (or an upstream dump) chose: ids as
ints or strings, datetimes as ``Datetime`` of any unit or as text (SQLite). ``typed`` turns the
columns an adapter uses into one set of dtypes, adding absent optional columns as null.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters.declared import SHADOW_PREFIX
from exporter.errors import SchemaError
from exporter.columns import TIME
from exporter.timeutil import EARLIEST_PLAUSIBLE

ID = "id"  # kind marker for ``typed``: text identifier
# An identifier only joined on: integers stay Int64 (casting 700k ids to text to join them was most
# of a join's cost), anything else is text, absent is an Int64 null; ``same_keys`` makes two sides
# agree. Its text (``cast(pl.String)``) is what ID reads, so a text id meets an integer key only
# when it is the key's exact spelling (``as_integer_id``: "7", never "07" or "+7").
JOIN_ID = "join_id"
TEXT = "text"
NUMBER = "number"
WHEN = "time"
# kind -> dtypes a column of that kind may be stored as (besides all-null); ids and text read anything.
_STORABLE = {
    WHEN: lambda dtype: isinstance(dtype, (pl.Datetime, pl.Date)) or dtype == pl.String,
    NUMBER: lambda dtype: dtype.is_numeric() or dtype in (pl.String, pl.Boolean),
}
_EXPECTED = {WHEN: "a date-time (or text holding one)", NUMBER: "a number (or text holding one)"}
_NOT_A_TWIN = pl.lit(False).alias("shadow_twin")


def typed(frame: pl.LazyFrame | pl.DataFrame, columns: Mapping[str, str], *, table: str = "table") -> pl.LazyFrame:
    """``frame`` reduced to ``columns`` ({name: kind}), cast to one dtype per kind; absent -> null.

    A column stored in a type its kind cannot be read from (e.g. a time as epoch integers) is a
    SchemaError naming ``table.column``: reinterpreting it would be a silent wrong number.
    """
    lazy = frame.lazy()
    return _typed(lazy, lazy.collect_schema(), columns, table)


def _typed(lazy: pl.LazyFrame, stored: pl.Schema, columns: Mapping[str, str], table: str) -> pl.LazyFrame:
    """``typed`` of ``lazy``, whose schema is ``stored`` (resolving a scan's schema reads its plan)."""
    schema = dict(stored)
    for name, kind in columns.items():
        if not _readable_as(lazy, table, name, kind, schema.get(name)):
            del schema[name]  # all null (an all-NaN float column of a dump): read as absent
    # with_columns (not select) so absent columns broadcast to the frame's height, even 0 rows.
    typed_columns = [_typed_column(name, kind, schema.get(name)) for name, kind in columns.items()]
    return lazy.with_columns(typed_columns).select(list(columns))


def table_rows(tables: Mapping[str, pl.LazyFrame | pl.DataFrame], name: str, columns: Mapping[str, str]) -> pl.LazyFrame:
    """``typed`` rows of the table ``name`` (absent -> no rows)."""
    return typed(tables.get(name, pl.LazyFrame()), columns, table=name)


def names_by_id(tables: Mapping[str, pl.LazyFrame | pl.DataFrame], name: str, column: str,
                alias: str = "name") -> pl.LazyFrame:
    """``name_id``, ``alias``: the ``column`` of each ``id`` of the lookup table ``name`` (Blazar's
    extra_capabilities, resource_properties), one row an id."""
    rows = table_rows(tables, name, {"id": ID, column: TEXT})
    return rows.select(pl.col("id").alias("name_id"), pl.col(column).alias(alias)).unique("name_id", keep="first")


def typed_union(tables: Mapping[str, pl.LazyFrame | pl.DataFrame], names: tuple[str, ...],
                columns: Mapping[str, str]) -> pl.LazyFrame:
    """``typed`` rows of every table in ``names`` present in ``tables`` (e.g. a table and its
    ``shadow_`` archive), stacked, with a ``source_table`` column naming each row's table and
    ``shadow_twin``: the row is in a ``shadow_`` table and a row with its ``id`` is still in the
    main table (archived while being read, or archived twice) — the main table's row counts.
    JOIN_ID columns have one dtype across the tables (``same_keys``)."""
    # Each table's schema is resolved once: its typed part's key dtypes follow from it.
    stored = {name: tables[name].lazy().collect_schema() for name in names if name in tables}
    # A table with no columns (absent: exporter.reconstruct.span_stage stands in an empty frame) has no
    # rows either; left out, its twin flag does not hash every id of the main table for nothing.
    parts = {name: _typed(tables[name].lazy(), schema, columns, name).with_columns(pl.lit(name).alias("source_table"))
             for name, schema in stored.items() if schema.len()}
    if not parts:
        empty = typed(pl.LazyFrame(), columns)
        return empty.with_columns(pl.lit(None, dtype=pl.String).alias("source_table"), _NOT_A_TWIN)
    keys = [name for name, kind in columns.items() if kind == JOIN_ID]
    # The typed parts' key dtypes are predicted from the stored ones, not resolved: valid because
    # ``typed`` reads a JOIN_ID column from its stored column alone (``_typed_column``), and never
    # as absent (``_readable_as`` drops only kinds with a _STORABLE check).
    assert JOIN_ID not in _STORABLE, "a JOIN_ID column read as absent would not have its stored dtype's type"
    key_dtypes = [[_join_id_dtype(stored[name].get(key)) for key in keys] for name in parts]
    parts = dict(zip(parts, _keys_alike(list(parts.values()), [keys] * len(parts), key_dtypes)))
    return pl.concat([_with_twin_flag(name, parts, columns) for name in parts], how="vertical")


def same_keys(left: pl.LazyFrame, right: pl.LazyFrame, left_on: str, right_on: str | None = None,
              ) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``left`` and ``right`` with their JOIN_ID columns of one dtype, to be joined: integers when both
    are, else both text (as ID reads them)."""
    keys = [[left_on], [right_on or left_on]]
    dtypes = [[frame.collect_schema()[names[0]]] for frame, names in zip((left, right), keys)]
    return tuple(_keys_alike([left, right], keys, dtypes))


def as_integer_id(text: pl.Expr) -> pl.Expr:
    """A text id as the integer whose text it is (null when it is no integer's text, e.g. "007"), to
    meet a JOIN_ID key stored as Int64 as the key's text would without casting every key to text
    (BENCHMARKS.md, session 11, bc207d5: a text join took 0.09-0.12 s per large table on 500 x 10,
    a third of it casting the integer keys to text)."""
    number = text.cast(pl.Int64, strict=False)
    return pl.when(number.cast(pl.String) == text).then(number)


def _keys_alike(frames: list[pl.LazyFrame], keys: list[list[str]], dtypes: list[list[pl.DataType]],
                ) -> list[pl.LazyFrame]:
    """``frames`` with the i-th key column of each (``keys[frame][i]``, of dtype ``dtypes[frame][i]``)
    cast to text unless all of them are Int64."""
    for at in range(len(keys[0])):
        if all(frame_dtypes[at] == pl.Int64 for frame_dtypes in dtypes):
            continue
        frames = [frame.with_columns(pl.col(names[at]).cast(pl.String)) for frame, names in zip(frames, keys)]
    return frames


def _join_id_dtype(stored: pl.DataType | None) -> pl.DataType:
    """The dtype ``typed`` reads a JOIN_ID column stored as ``stored`` (None: absent) into: Int64 for
    numbers (but UInt64, which may not fit) and for no values, else text."""
    if stored is None or stored == pl.Null or stored.is_float() or (stored.is_integer() and stored != pl.UInt64):
        return pl.Int64()
    return pl.String()


def _with_twin_flag(name: str, parts: Mapping[str, pl.LazyFrame], columns: Mapping[str, str]) -> pl.LazyFrame:
    schema, _, table = name.partition(".")
    main = f"{schema}.{table.removeprefix(SHADOW_PREFIX)}"
    if not table.startswith(SHADOW_PREFIX) or main not in parts or "id" not in columns:
        return parts[name].with_columns(_NOT_A_TWIN)
    main_ids = parts[main].select("id", pl.lit(True).alias("shadow_twin")).drop_nulls("id").unique("id")
    return (parts[name].join(main_ids, on="id", how="left", maintain_order="left")
            .with_columns(pl.col("shadow_twin").fill_null(False)))


def _readable_as(lazy: pl.LazyFrame, table: str, name: str, kind: str, dtype: pl.DataType | None) -> bool:
    """Whether the column is readable as ``kind``: True; all null in a foreign type: False (read
    as absent); values in a foreign type: SchemaError naming ``table.column``."""
    accepts = _STORABLE.get(kind)
    if dtype is None or dtype == pl.Null or accepts is None or accepts(dtype):
        return True
    values = pl.col(name).is_not_null()
    if dtype.is_float():
        values &= ~pl.col(name).is_nan()
    if not lazy.select(values.any()).collect().item():
        return False
    raise SchemaError(f"{table}.{name}: stored as {dtype}, expected {_EXPECTED[kind]}; "
                      "refusing to reinterpret it (epoch numbers would read as 1970)")


def _typed_column(name: str, kind: str, dtype: pl.DataType | None) -> pl.Expr:
    if dtype is None or dtype == pl.Null:
        target = {ID: pl.String(), JOIN_ID: _join_id_dtype(None), TEXT: pl.String(), NUMBER: pl.Float64(),
                  WHEN: TIME}[kind]
        return pl.lit(None, dtype=target).alias(name)
    column = pl.col(name)
    if kind == JOIN_ID and _join_id_dtype(dtype) == pl.Int64:
        return column.cast(pl.Int64, strict=False).alias(name)  # a float id as ID reads it, less the text
    if kind == WHEN:
        if dtype == pl.String:
            return column.str.strip_chars().str.to_datetime(time_unit="us", strict=False).alias(name)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return column.cast(TIME).alias(name)
    if kind == NUMBER:
        return column.cast(pl.Float64, strict=False).alias(name)
    text = column.cast(pl.String)
    if kind == ID and dtype.is_float():
        text = column.cast(pl.Int64, strict=False).cast(pl.String)
    return text.alias(name)


def first_row_each(rows: pl.DataFrame | pl.LazyFrame, key: str | tuple[str, ...] = "entity_id",
                   ) -> pl.DataFrame | pl.LazyFrame:
    """The first row of each ``key`` (a column, or a tuple of them; rows whose key is null count as one). Where rows name their
    source (source_table, source_id), the first by that source,
    not by position (``ROW_ID_ORDER``): the joins upstream hand rows over in an order that changes
    from run to run, and which row stands for an entity must not. A frame in hand whose keys do not
    repeat is returned without the sort (nothing to choose). docs/semantics.md "One row per instance"."""
    first = (pl.col(key) if isinstance(key, str) else pl.struct(key)).is_first_distinct()  # as unique(keep="first"), 0.4x its CPU
    if isinstance(rows, pl.DataFrame):
        kept = rows.filter(first)
        if kept.height == rows.height:
            return kept
    if not {"source_table", "source_id"} <= set(rows.collect_schema().names()):  # the rules' own test frames
        return rows.filter(first)
    return rows.sort(*ROW_ID_ORDER, nulls_last=True, maintain_order=True).filter(first)


def id_order(column: str) -> tuple[pl.Expr, ...]:
    """Sort keys putting the ids of ``column`` in one order: integers first, as numbers ("9" before
    "10"), then other ids as text. A row's piece on one device (``<row id>/<device id>``,
    reconstruct.device_levels) goes by its row id, then by the whole id. docs/semantics.md "Row id order"."""
    number = pl.col(column).str.split_exact("/", 1).struct.field("field_0").cast(pl.Int64, strict=False)
    # the null test first, so where the numbers go does not depend on a sort's nulls_last
    return number.is_null(), number, pl.col(column)


# Which of several rows a rule takes must not follow the run-varying order the joins upstream
# hand rows over in: every such choice sorts by this (docs/semantics.md "Row id order").
ROW_ID_ORDER = (pl.col("source_table"), *id_order("source_id"))


def in_row_id_order(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in ``ROW_ID_ORDER`` (ties keep their order)."""
    return rows.sort(*ROW_ID_ORDER, nulls_last=True, maintain_order=True)


def first_rule_failed(rules: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """The name of the first rule whose condition is true (a reason), else null."""
    expr = pl.lit(None, dtype=pl.String)
    for reason, condition in reversed(rules):
        expr = pl.when(condition.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr.alias("rejection_reason")


def start_rules(*times: str) -> list[tuple[str, pl.Expr]]:
    """A window needs a start (``null_start``) and plausible ``times`` (``implausible_time``;
    default: its start and end). Checked in this order, after the rules the adapter puts first."""
    return [("null_start", pl.col("start").is_null()),
            ("implausible_time", implausible_time(*(times or ("start", "end"))))]


def range_rules() -> list[tuple[str, pl.Expr]]:
    """A window ends after it starts: an end before the start is ``invalid_time_range``, an end at
    the start covers no time (``never_effective``). The last rules of a window, in this order."""
    return [("invalid_time_range", pl.col("end") < pl.col("start")),
            ("never_effective", pl.col("end") == pl.col("start"))]


def implausible_time(*columns: str) -> pl.Expr:
    """Any of ``columns`` before 2000-01-01, earlier than any OpenStack (a zeroed clock, epoch 0)."""
    return pl.any_horizontal([pl.col(c) < pl.lit(EARLIEST_PLAUSIBLE, dtype=TIME) for c in columns])


def non_finite(*columns: str) -> pl.Expr:
    """Any of ``columns`` NaN or infinite (null is unknown, not invalid)."""
    return pl.any_horizontal([~pl.col(c).is_finite() for c in columns])


def detail_json(*columns: str) -> pl.Expr:
    """The named columns of a row as a JSON object (text), for ``rejection_detail``."""
    return pl.struct([pl.col(c).cast(pl.String) for c in columns]).struct.json_encode().alias("rejection_detail")


