"""What a source table is, and the one place that collects what the adapters declare.

Each adapter module in ``exporter.adapters`` has a ``READS`` tuple of :class:`SourceTable`.
``declared_tables()`` gathers them; ``extract`` and ``grants`` use only that list, so adding a
source table is one adapter change, never a second list to keep in sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceTable:
    """A table the tool reads: ``schema.table``, the columns wanted, and whether it must exist.

    ``columns`` are the columns to copy when present (older releases lack some; newer have
    more). ``required`` columns must exist for the table to be usable at all.
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    primary_key: str = "id"
    optional: bool = False
    required: tuple[str, ...] = field(default=())
    description: str = ""

    @property
    def name(self) -> str:
        """``<schema>.<table>``, also the snapshot file stem."""
        return f"{self.schema}.{self.table}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"


TIMESTAMPS = ("created_at", "updated_at", "deleted_at", "deleted")


def declared_tables() -> tuple[SourceTable, ...]:
    """Every table any adapter reads, de-duplicated by name, in a stable order."""
    from exporter import adapters

    seen: dict[str, SourceTable] = {}
    for module in adapters.ADAPTER_MODULES:
        for source in module.READS:
            previous = seen.get(source.name)
            if previous is None:
                seen[source.name] = source
            elif previous != source:
                # Two adapters reading one table: union their columns, strictest requirement wins.
                seen[source.name] = SourceTable(
                    schema=source.schema,
                    table=source.table,
                    columns=tuple(dict.fromkeys(previous.columns + source.columns)),
                    primary_key=source.primary_key,
                    optional=previous.optional and source.optional,
                    required=tuple(dict.fromkeys(previous.required + source.required)),
                    description=previous.description or source.description,
                )
    return tuple(seen.values())
