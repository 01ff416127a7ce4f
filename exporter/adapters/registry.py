"""The one place that collects what the adapters declare.

Each adapter module in ``exporter.adapters`` has a ``READS`` tuple of
:class:`~exporter.adapters.declared.SourceTable`. ``declared_tables()`` gathers them; ``extract``,
``grants`` and the live exporter use only that list, so adding a source table is one adapter
change, never a second list to keep in sync. Register a new adapter module in ``ADAPTER_MODULES``.
"""

from __future__ import annotations

from exporter.adapters import (
    blazar_devices, blazar_flag, blazar_hosts, blazar_leases, extras, legacy_usage, nova_hosts, nova_instances,
    nova_placements, nova_services, zun_containers,
)
from dataclasses import replace

from exporter.adapters.declared import ChildOf, SourceTable

ADAPTER_MODULES = (nova_hosts, nova_services, blazar_hosts, blazar_flag, blazar_leases, nova_instances,
                   nova_placements, legacy_usage, blazar_devices, zun_containers, extras)


def declared_tables() -> tuple[SourceTable, ...]:
    """Every table any adapter reads, de-duplicated by name, in a stable order."""
    seen: dict[str, SourceTable] = {}
    for module in ADAPTER_MODULES:
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
                    feeds_spans=previous.feeds_spans or source.feeds_spans,
                    child_of=previous.child_of or source.child_of,
                    spans_end=tuple(dict.fromkeys(previous.spans_end + source.spans_end)),
                )
    return tuple(seen.values())


def read_with_parent(sources: tuple[SourceTable, ...]) -> dict[str, ChildOf]:
    """Of ``sources``, the tables whose rows change only with their parent's: name -> relation."""
    return {s.name: s.child_of for s in sources if s.child_of is not None and s.child_of.written_with_parent}


def span_tables() -> tuple[SourceTable, ...]:
    """The declared tables some adapter builds spans from: what the live exporter reads."""
    return tuple(source for source in declared_tables() if source.feeds_spans)


# What a CHI@Edge site must have: Blazar's leases and device tables and Zun's containers. It runs no
# Nova and no host plugin, so every other table is optional there (extract and the live exporter
# record it missing instead of failing).
EDGE_REQUIRED = ("blazar.leases", "blazar.reservations", "blazar.devices", "blazar.device_allocations",
                 "zun.container", "zun.container_actions")


def site_tables(kind: str = "baremetal") -> tuple[SourceTable, ...]:
    """The declared tables as a site of ``kind`` (exporter.config.SITE_KINDS) needs them."""
    if kind != "edge":
        return declared_tables()
    return tuple(replace(source, optional=source.name not in EDGE_REQUIRED) for source in declared_tables())


def site_span_tables(kind: str = "baremetal") -> tuple[SourceTable, ...]:
    """``site_tables`` that feed spans: what the live exporter reads for a site of ``kind``."""
    return tuple(source for source in site_tables(kind) if source.feeds_spans)
