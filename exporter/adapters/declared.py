"""What a source table is: the declaration every adapter makes of the tables and columns it reads."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ChildOf:
    """Every row belongs to one row of ``parent``: its ``column`` holds that row's ``parent_column``.

    ``written_with_parent``: the service writes these rows only while it also saves the parent
    row, so a reader that follows the parent's changed rows sees every change of this table.
    """

    parent: str
    parent_column: str
    column: str
    written_with_parent: bool = False


@dataclass(frozen=True)
class SourceTable:
    """A table the tool reads: ``schema.table``, the columns wanted, and whether it must exist.

    ``columns`` are the columns to copy when present (older releases lack some; newer have
    more). ``required`` columns must exist for the table to be usable at all. ``feeds_spans``:
    some adapter builds spans from it (False: archived for later use or comparison only, so the
    live exporter does not read it). ``child_of``: the parent relation (see :class:`ChildOf`).
    ``spans_end``: columns after the earliest of which no span evidenced by a row continues (a
    row with all of them null or later may still reach the present).
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    primary_key: str = "id"
    optional: bool = False
    required: tuple[str, ...] = field(default=())
    description: str = ""
    feeds_spans: bool = True
    child_of: ChildOf | None = None
    spans_end: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``<schema>.<table>``, also the snapshot file stem."""
        return f"{self.schema}.{self.table}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"


TIMESTAMPS = ("created_at", "updated_at", "deleted_at", "deleted")
SHADOW_PREFIX = "shadow_"  # nova-manage db archive moves soft-deleted rows of T to shadow_T


def shadow_twin(name: str) -> str:
    """``schema.shadow_table`` for ``schema.table``: the archive holding the rest of its rows."""
    schema, table = name.split(".", 1)
    return f"{schema}.{SHADOW_PREFIX}{table}"


def archive_only(sources: tuple[SourceTable, ...]) -> tuple[SourceTable, ...]:
    """``sources`` marked as feeding no span (extracted, never read live)."""
    return tuple(replace(source, feeds_spans=False) for source in sources)
