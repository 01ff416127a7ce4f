"""What a source table is: the declaration every adapter makes of the tables and columns it reads."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class SourceTable:
    """A table the tool reads: ``schema.table``, the columns wanted, and whether it must exist.

    ``columns`` are the columns to copy when present (older releases lack some; newer have
    more). ``required`` columns must exist for the table to be usable at all. ``feeds_spans``:
    some adapter builds spans from it (False: archived for later use or comparison only, so the
    live exporter does not read it).
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    primary_key: str = "id"
    optional: bool = False
    required: tuple[str, ...] = field(default=())
    description: str = ""
    feeds_spans: bool = True

    @property
    def name(self) -> str:
        """``<schema>.<table>``, also the snapshot file stem."""
        return f"{self.schema}.{self.table}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"


TIMESTAMPS = ("created_at", "updated_at", "deleted_at", "deleted")


def archive_only(sources: tuple[SourceTable, ...]) -> tuple[SourceTable, ...]:
    """``sources`` marked as feeding no span (extracted, never read live)."""
    return tuple(replace(source, feeds_spans=False) for source in sources)
