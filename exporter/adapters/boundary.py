"""Checks at the reading boundary: tables that cannot be read as Nova/Blazar tables are refused.

The adapters' row rules handle bad *values* (each becomes a rejection with a reason). A drifted
*schema* would instead turn every row into a silent wrong number (a missing ``node`` column
rejects every instance; a lease time stored as epoch integers reads as 1970), so these checks
stop the run with one :class:`SchemaError` naming ``schema.table.column``:

- every table given has the columns its adapter declares ``required``;
- a column an adapter reads as a time is stored as a date-time (or text holding one), a number
  as a number (or text); see ``exporter.adapters.common.typed``;
- ``nova.instances`` is not empty while ``nova.compute_nodes`` has rows (a broken extract or the
  wrong database, not a cloud that never ran an instance).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters.declared import shadow_twin
from exporter.adapters.registry import declared_tables
from exporter.errors import SchemaError

# (table that must have rows, the table whose rows show it should): each with its shadow_ twin.
MUST_NOT_BE_EMPTY = (("nova.instances", "nova.compute_nodes"),)


def check_required_columns(tables: Mapping[str, pl.LazyFrame]) -> None:
    """SchemaError naming the first required column missing from a table that is present."""
    for source in declared_tables():
        frame = tables.get(source.name)
        if frame is None:
            continue
        present = set(frame.collect_schema().names())
        missing = [column for column in source.required if column not in present]
        if missing:
            raise SchemaError(f"{source.name}.{missing[0]}: required column missing"
                              + (f" (also {', '.join(missing[1:])})" if len(missing) > 1 else "")
                              + "; the table does not look like the Nova/Blazar table the tool reads")


def check_not_empty(tables: Mapping[str, pl.LazyFrame]) -> None:
    """SchemaError when an essential table (with its shadow twin) has no row but its companion has."""
    for table, companion in MUST_NOT_BE_EMPTY:
        if _rows(tables, table) == 0 and (evidence := _rows(tables, companion)):
            raise SchemaError(f"{table} is empty (with its shadow twin) while {companion} has {evidence} rows: "
                              "an incomplete extract or the wrong database")


def _rows(tables: Mapping[str, pl.LazyFrame], name: str) -> int:
    frames = [tables[n] for n in (name, shadow_twin(name)) if n in tables]
    return sum(int(frame.select(pl.len()).collect().item()) for frame in frames)
