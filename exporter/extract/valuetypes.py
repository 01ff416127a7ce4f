"""How copied values are typed: SQL types -> stable polars dtypes, driver rows and another
reader's columns -> frames of those dtypes.

SQL types map to stable polars dtypes, also for empty tables: integers and booleans (TINYINT(1)
as stored) -> Int64, DATETIME/TIMESTAMP/DATE -> Datetime("us") (naive UTC), FLOAT/DECIMAL ->
Float64, BLOB -> Binary, everything else (VARCHAR, TEXT, ENUM, JSON) -> String. Values that do not
fit (MySQL zero dates like ``0000-00-00``, text in an integer column of a SQLite file) become null
and are counted per column in ``TableRead.invalid_values``, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa

_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class ColumnInfo:
    """One copied column: its source SQL type (as the server reports it) and its polars dtype."""

    name: str
    source_type: str
    dtype: pl.DataType


def polars_dtype(sql_type: sa.types.TypeEngine) -> pl.DataType:
    """The stable polars dtype a reflected SQL type is stored as (see module docstring)."""
    if isinstance(sql_type, (sa.types.DateTime, sa.types.Date)):
        return pl.Datetime("us")
    if isinstance(sql_type, (sa.types.Integer, sa.types.Boolean)):
        return pl.Int64()
    if isinstance(sql_type, (sa.types.Float, sa.types.Numeric)):  # FLOAT, DOUBLE, DECIMAL
        return pl.Float64()
    if isinstance(sql_type, sa.types.LargeBinary):
        return pl.Binary()
    return pl.String()


def dtype_name(dtype: pl.DataType) -> str:
    """Short stable text for a dtype in manifests: ``Int64``, ``Datetime(us)``, ``String``, ..."""
    return "Datetime(us)" if dtype == pl.Datetime("us") else str(dtype)


def typed_frame(columns: tuple[ColumnInfo, ...], rows: list) -> tuple[pl.DataFrame, dict[str, int]]:
    """Driver rows -> a frame with the stable dtypes of ``columns``, plus invalid-value counts per column.

    Shared by full reads and the live exporter's changed-row reads, so both type rows alike.
    """
    values = list(zip(*rows))
    series, invalid = [], {}
    for index, column in enumerate(columns):
        raw = list(values[index])
        typed = _typed_values(column, raw)
        bad = typed.null_count() - raw.count(None)
        if bad:
            invalid[column.name] = bad
        series.append(typed)
    return pl.DataFrame(series), invalid


def _typed_values(column: ColumnInfo, raw: list) -> pl.Series:
    if column.dtype != pl.Datetime("us"):
        return pl.Series(column.name, raw, dtype=column.dtype, strict=False)
    text = pl.Series(column.name, raw, dtype=pl.String, strict=False).str.strip_chars().str.replace("T", " ", literal=True)
    return pl.select(pl.coalesce(text.str.strptime(pl.Datetime("us"), fmt, strict=False)
                                 for fmt in _DATETIME_FORMATS)).to_series().alias(column.name)


def typed_series(column: ColumnInfo, values: pl.Series) -> pl.Series:
    """A column as another reader returned it -> the dtype and values this reader gives.

    Datetimes arrive as values or as the server's text, floats as text (text is parsed like
    PyMySQL's values: text that is no value becomes null); everything else is cast.
    """
    if column.dtype == pl.Datetime("us"):
        if isinstance(values.dtype, pl.Datetime):  # read as values: exact, no parsing
            return values.cast(pl.Datetime("us")).alias(column.name)
        if values.dtype.is_integer() or isinstance(values.dtype, pl.Decimal):
            return datetime_from_digits(values).alias(column.name)
        text = values.cast(pl.String, strict=False)
        # the server's text of a DATETIME without fractions fits whole seconds exactly, which parses
        # ~10x faster than the general formats (and the same where it fits); else every format is tried
        # on the stripped text, as on PyMySQL's values
        first = text.str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False, exact=True, cache=False)
        if first.null_count() == text.null_count():
            return first.alias(column.name)
        text = text.str.strip_chars().str.replace("T", " ", literal=True)
        return pl.select(pl.coalesce(text.str.strptime(pl.Datetime("us"), fmt, strict=False)
                                     for fmt in _DATETIME_FORMATS)).to_series().alias(column.name)
    if column.dtype == pl.Float64() and values.dtype == pl.String:
        return values.str.strip_chars().cast(pl.Float64, strict=False).alias(column.name)
    return values.cast(column.dtype, strict=False).alias(column.name)


def whole_digits(values: pl.Series) -> pl.Series:
    """The whole-second part ``YYYYMMDDhhmmss`` of datetimes read as numbers (see ``datetime_from_digits``)."""
    return values.cast(pl.Int64)


def datetime_from_digits(values: pl.Series) -> pl.Series:
    """Datetimes the server gave as the number of their digits, ``YYYYMMDDhhmmss`` (fractions as
    decimals) -> Datetime("us"), null where the digits are no date: a zero date (0), a zero month
    or day, an impossible day (``2020-02-30``), as the text reader types the server's text of them.
    Plain integer arithmetic: the day number is the proleptic Gregorian count from 1970-01-01."""
    whole = whole_digits(values)
    micro = (((values - whole.cast(values.dtype)) * 1_000_000).cast(pl.Int64) if isinstance(values.dtype, pl.Decimal)
             else pl.zeros(len(values), pl.Int64, eager=True))
    year, month, day = whole // 10**10, whole // 10**8 % 100, whole // 10**6 % 100
    hour, minute, second = whole // 10**4 % 100, whole // 100 % 100, whole % 100
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = pl.select(pl.when(month == 2).then(28 + leap.cast(pl.Int64))
                           .when(month.is_in([4, 6, 9, 11])).then(30).otherwise(31)).to_series()
    valid = ((month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
             & (hour < 24) & (minute < 60) & (second < 60))
    shifted = year - (month <= 2).cast(pl.Int64)  # years counted from March: the leap day comes last
    era = shifted // 400
    of_era = shifted - era * 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468
    micros = (days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000 + micro
    return pl.select(pl.when(valid).then(micros)).to_series().cast(pl.Datetime("us")).alias(values.name)
