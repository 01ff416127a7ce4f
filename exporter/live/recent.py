"""Only the rows whose spans can reach past a cut-off: what an incremental refresh recomputes.

Between full reloads the live exporter integrates history once, up to a cut-off C (the last full
reload), and afterwards recomputes only spans that can cover time at or after C. A row can be
left out when every span it could evidence ends before C. The adapters declare both facts on
their source tables (``exporter.adapters.declared``):

- ``spans_end``: the columns after the first of which no span of a row continues (an instance's
  ``deleted_at``/``terminated_at``, a lease's ``end_date``/``deleted_at``, a host or device
  allocation's ``deleted_at``): a row with one of them before C is left out;
- ``child_of``: the parent row a row belongs to (an instance's actions, their events, request
  spec, migrations and embedded flavors; a lease's reservations, their host and device
  allocations, instance and device reservations; a Zun container's actions, their events): a row
  whose parent was left out is left out. A table and its ``shadow_`` twin
  are one table here (archived parents and children may sit on either side).

Everything else is kept, including rows that will turn out to end before C: keeping a row never
changes what happens at or after C (rows that end before C can only trim or merge time before
C), so the filter only has to be conservative. Host tables declare neither and are kept whole:
every span is clipped into its host's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from exporter.adapters.declared import ChildOf, SourceTable, shadow_twin
from exporter.adapters.registry import declared_tables


def open_at(frame: pl.DataFrame, cutoff: dt.datetime, *columns: str) -> pl.Expr:
    """Rows where every present ``columns`` value is null or at/after ``cutoff``."""
    limit = pl.lit(cutoff, dtype=pl.Datetime("us"))
    conditions = [pl.col(c).is_null() | (pl.col(c) >= limit) for c in columns if c in frame.columns]
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def recent_tables(tables: Mapping[str, pl.DataFrame], *, cutoff: dt.datetime,
                  sources: tuple[SourceTable, ...] | None = None) -> dict[str, pl.DataFrame]:
    """``tables`` without the rows whose spans all end before ``cutoff`` (see module docstring).

    ``sources``: the declarations to follow (default: every declared table).
    """
    declared = {s.name: s for s in (declared_tables() if sources is None else sources)}
    out = dict(tables)
    for name in parents_first([n for n in out if n in declared], declared):
        source = declared[name]
        if not out[name].width or not (source.spans_end or source.child_of):
            continue
        keep = open_at(out[name], cutoff, *source.spans_end)
        if source.child_of is not None:
            keys = parent_keys(out, source.child_of, dtype=out[name].schema[source.child_of.column])
            keep = keep & pl.col(source.child_of.column).is_in(keys.implode())
        out[name] = out[name].filter(keep)
    return out


def parents_first(names: list[str], declared: Mapping[str, SourceTable]) -> list[str]:
    """``names`` ordered so that every table comes after its parent (stable otherwise)."""
    def depth(name: str) -> int:
        parent = declared[name].child_of if name in declared else None
        return 0 if parent is None else 1 + depth(parent.parent)
    return sorted(names, key=depth)


def parent_keys(out: Mapping[str, pl.DataFrame], relation: ChildOf, *, dtype: pl.DataType) -> pl.Series:
    """The distinct ``parent_column`` values kept in the parent table and its shadow twin."""
    column = relation.parent_column
    parts = [out[name][column] for name in (relation.parent, shadow_twin(relation.parent))
             if name in out and out[name].width and column in out[name].columns]
    if not parts:
        return pl.Series(column, [], dtype=dtype)
    return pl.concat([part.cast(parts[0].dtype) for part in parts]).unique()
