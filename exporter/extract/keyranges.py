"""Key ranges for the fast reader: where one range of at most ``batch_rows`` of the view's rows
ends, found with as few queries on the consistent view as the keys allow."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from sqlalchemy.engine import Connection

from exporter.extract.connectorx_source import quoted


def key_ranges(conn: Connection, table, count: int, low, top, batch_rows: int) -> Iterator[tuple]:
    """Key ranges (low, high, top) of ``table`` (a ``fastread._FastTable``) holding at most
    ``batch_rows`` of the view's ``count`` rows (keys ``low`` to ``top``): ``low <= key < high``
    (high None: ``key <= top``). Dense integer keys (at least every other value used) step by value
    without a query; other integer keys step by value, jumping gaps; where those turn out sparse,
    and for other keys, ``high`` is the key ``batch_rows`` on."""
    if count == 0:
        return
    if table.numeric_key and top - low + 1 <= 2 * count:  # at most twice the ranges rows need
        while low <= top:
            high = low + batch_rows
            yield (low, high, top) if high <= top else (low, None, top)
            low = high
        return
    key = quoted(table.key)
    sparse_after = 4 + 2 * count // batch_rows  # more value steps than that: ids are sparse
    steps = 0
    while low is not None:
        steps += 1
        if table.numeric_key and steps <= sparse_after:
            high = low + batch_rows
            yield (low, high, top) if high <= top else (low, None, top)
            low = _scalar(conn, f"SELECT MIN({key}) FROM {table.physical} WHERE {key} >= %s", high) \
                if high <= top else None
            continue
        high = _scalar(conn, f"SELECT {key} FROM {table.physical} WHERE {key} > %s ORDER BY {key} "
                             f"LIMIT 1 OFFSET {batch_rows - 1}", low)
        yield low, high, top
        low = high


def primary_ranges(conn: Connection, table, count: int, batch_rows: int) -> Iterator[tuple]:
    """``key_ranges`` of ``table.primary`` (an integer), from the ends of its index (no scan). A
    generator like ``key_ranges``: each query runs when the next range is asked for (under the view's lock)."""
    primary = quoted(table.primary)
    low, top = conn.exec_driver_sql(f"SELECT MIN({primary}), MAX({primary}) FROM {table.physical}").one()
    by_primary = dataclasses.replace(table, key=table.primary, numeric_key=True, clustered=True)
    yield from key_ranges(conn, by_primary, count, low, top, batch_rows)


def _scalar(conn: Connection, sql: str, value):
    return conn.exec_driver_sql(sql, (value,)).scalar()
