"""connectorx connections for the fast reader: where it connects, what every connection runs first
(UTC, read-only, a statement time bound), running one query, mapping its errors, and the SQL text
of names and values. ``fastread`` decides what to read and checks it against the consistent view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from exporter.db import classify
from exporter.extract.valuetypes import ColumnInfo

_SQL_ERROR = re.compile(r"ERROR (\d{4})")
# the one driver option the fast reader applies too: PyMySQL's default, and every connectorx
# connection runs SET NAMES utf8mb4 (text arrives as the same UTF-8 either way)
SAME_CHARSET = {"charset": "utf8mb4"}


class FastReadUnusable(Exception):
    """The fast read cannot give the view's content for this table; the reason says why."""


@dataclass(frozen=True)
class FastSource:
    """Where connectorx connects (a ``mysql://`` URI) and what it runs first on every connection."""

    uri: str
    setup: tuple[str, ...]


def fast_source(engine: Engine, *, statement_seconds: float | None) -> FastSource | str:
    """The connectorx source for ``engine``, or why there is none (the reason is recorded)."""
    url = engine.url
    if url.get_backend_name() not in ("mysql", "mariadb"):
        return ("SQLite: connectorx opens files read-write and ignores pre-execution queries, "
                "so only the SQLAlchemy reader can guarantee a read-only connection")
    if {key: str(value).lower() for key, value in url.query.items()} not in ({}, SAME_CHARSET) or not url.host:
        return "the URL has driver options or no host (connectorx would not apply them)"
    try:
        import connectorx  # noqa: F401 - only checking that it can run
        import pyarrow  # noqa: F401
    except ImportError:
        return "connectorx is not installed"
    uri = url.set(drivername="mysql", database=url.database or "information_schema", query={})
    setup = ["SET NAMES utf8mb4", "SET time_zone = '+00:00'", "SET SESSION TRANSACTION READ ONLY"]
    if statement_seconds:
        mariadb = getattr(engine.dialect, "is_mariadb", True)
        setup.append(f"SET SESSION max_statement_time = {float(statement_seconds):.3f}" if mariadb
                     else f"SET SESSION max_execution_time = {int(statement_seconds * 1000)}")
    return FastSource(uri.render_as_string(hide_password=False), tuple(setup))


def selected(column: ColumnInfo) -> str:
    """Datetimes as the number of their digits (``datetime_digits``), floats as the server's text
    (what PyMySQL parses: a FLOAT read as binary would widen its float32), the rest as stored."""
    if column.dtype == pl.Datetime("us"):
        return f"{datetime_digits(column)} AS {quoted(column.name)}"
    if column.dtype == pl.Float64():
        return f"CAST({quoted(column.name)} AS CHAR) AS {quoted(column.name)}"
    return quoted(column.name)


def datetime_digits(column: ColumnInfo) -> str:
    """A DATETIME/TIMESTAMP as the number ``YYYYMMDDhhmmss`` (a decimal with its fractions; a
    TIMESTAMP in the session's zone, UTC), a DATE scaled to the same digits: the stored digits
    with no check, so zero and impossible dates (``0000-00-00``, ``2020-02-30``), which connectorx
    cannot convert as values (it panics), come through as numbers too, and are typed in this
    process (``valuetypes.datetime_from_digits``: null, as the text reader types them). Cheaper for
    the server than any date function: ``+ INTERVAL 0 SECOND`` (the previous way, which also turned
    year 0 into null where the text reader keeps it) took it 2.4x the CPU of the plain column."""
    is_date = column.source_type.upper().split("(")[0].strip() == "DATE"
    return f"({quoted(column.name)} {'* 1000000' if is_date else '+ 0'})"


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def run_query(fast: FastSource, query: str) -> pl.DataFrame:
    try:
        return pl.read_database_uri(query, fast.uri, engine="connectorx", pre_execution_query=list(fast.setup))
    except RuntimeError as exc:  # connectorx reports server errors as text: "... ERROR 1969 (70100): ..."
        raise classified(exc) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - also a Rust panic (a value it cannot convert): fall back
        raise FastReadUnusable(f"connectorx failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def classified(exc: RuntimeError) -> Exception:
    text = str(exc)
    match = _SQL_ERROR.search(text)
    if match is None:
        return FastReadUnusable(f"connectorx failed: {text.splitlines()[0][:200] if text else type(exc).__name__}")
    code = int(match.group(1))
    error = classify(sa.exc.OperationalError("connectorx", None, CodedError(code, text)), what="fast read")
    return error if error.kind == "timeout" else FastReadUnusable(str(error))


class CodedError(Exception):
    """A server error as (code, message), the shape exec classification expects of drivers."""
