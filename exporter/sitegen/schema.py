"""SQLAlchemy Core definitions of the Nova / Nova-API / Blazar tables the generator writes.

Column names, types and nullability follow the real DDL (see
``shared/reference/openstack-schema.md`` §2-§4, §11): Nova soft delete is ``deleted INT``
(0 live, = id when deleted); the Chameleon Blazar fork uses ``deleted VARCHAR(36) NULL``
(NULL live, = the row's id when deleted). MySQL-only types (MEDIUMTEXT, TINYINT(1)) are
variants, so the same tables render on SQLite.

The tables themselves are in ``schema_nova`` and ``schema_blazar`` (shared column shapes in
``ddl_columns``). ``schema_blazar.capability_tables(md, kind)`` adds the host-capability tables
of one of the three historical schemas: ``property_id`` (``resource_properties``),
``capability_id`` (``extra_capabilities``) or ``capability_name`` (name in the row itself).
"""

from __future__ import annotations

import sqlalchemy as sa

from exporter.sitegen.schema_blazar import (
    audit_tables, blazar_host_tables, blazar_tables, capability_tables, legacy_tables,
)
from exporter.sitegen.schema_nova import nova_api_tables, nova_instance_tables, nova_move_tables, nova_tables

CAPABILITY_SCHEMAS = ("property_id", "capability_id", "capability_name")


# Columns only the Chameleon Blazar fork has; upstream Blazar lacks them (hard deletes).
CHAMELEON_ONLY_COLUMNS = {
    "computehosts": ("disabled", "deleted", "deleted_at"),
    "computehost_reservations": ("on_start", "deleted", "deleted_at"),
    "resource_properties": ("is_unique", "deleted", "deleted_at"),
    "extra_capabilities": ("is_unique", "deleted", "deleted_at"),
}
SOFT_DELETE_COLUMNS = ("deleted", "deleted_at")


def chameleon_only(table: str) -> tuple[str, ...]:
    """Columns of blazar.``table`` that upstream Blazar does not have."""
    return CHAMELEON_ONLY_COLUMNS.get(table, SOFT_DELETE_COLUMNS)


def build_metadata(capability_schema: str = "property_id", *, upstream_blazar: bool = False) -> sa.MetaData:
    """All tables for one generated site, with the chosen capability schema.

    ``upstream_blazar``: the Blazar tables as upstream Blazar has them (no soft-delete
    columns, none of the Chameleon fork's additions).
    """
    if capability_schema not in CAPABILITY_SCHEMAS:
        raise ValueError(f"capability_schema must be one of {CAPABILITY_SCHEMAS}")
    md = sa.MetaData()
    nova_tables(md)
    nova_instance_tables(md)
    nova_move_tables(md)
    nova_api_tables(md)
    blazar_tables(md)
    blazar_host_tables(md)
    capability_tables(md, capability_schema)
    legacy_tables(md)
    audit_tables(md)
    return _without_chameleon_columns(md) if upstream_blazar else md


def _without_chameleon_columns(md: sa.MetaData) -> sa.MetaData:
    """A copy of ``md`` whose Blazar tables lack the fork's columns (constraints on them dropped)."""
    upstream = sa.MetaData()
    for table in md.tables.values():
        if table.schema != "blazar":
            table.to_metadata(upstream)
            continue
        dropped = chameleon_only(table.name)
        columns = [column._copy() for column in table.columns if column.name not in dropped]
        uniques = [sa.UniqueConstraint(*c.columns.keys()) for c in table.constraints
                   if isinstance(c, sa.UniqueConstraint) and not set(c.columns.keys()) & set(dropped)]
        sa.Table(table.name, upstream, *columns, *uniques, schema=table.schema)
    return upstream


def all_table_names() -> set[tuple[str, str]]:
    """(schema, table) of every table any capability schema variant could create."""
    names: set[tuple[str, str]] = set()
    for variant in CAPABILITY_SCHEMAS:
        names |= {(t.schema, t.name) for t in build_metadata(variant).tables.values()}
    return names
