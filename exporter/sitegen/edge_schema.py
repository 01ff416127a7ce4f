"""SQLAlchemy Core definitions of the CHI@Edge tables: Blazar's device plugin (Chameleon fork) and Zun.

Follows ``shared/reference/openstack-schema.md`` §4.12 and §6: device rows gained soft delete in
May 2022, device capabilities name their capability by ``capability_id`` (extra_capabilities,
until 2024) or ``property_id`` (resource_properties, since); Zun has no soft delete at all.
"""

from __future__ import annotations

import sqlalchemy as sa

from exporter.sitegen.ddl_columns import DATETIME, MEDIUMTEXT, TINYINT1, blazar_timestamps, uuid_pk, varchar
from exporter.sitegen.schema import build_metadata

DEVICE_CAPABILITY_SCHEMAS = ("property_id", "capability_id")


def edge_metadata(capability_schema: str) -> sa.MetaData:
    """An edge site's tables: all of Blazar's (the host plugin's stay empty), the device tables and
    Zun's; no Nova, no legacy cache, no audit database."""
    metadata = sa.MetaData()
    for table in build_metadata(capability_schema).tables.values():
        if table.schema == "blazar":
            table.to_metadata(metadata)
    add_edge_tables(metadata, capability_schema)
    return metadata


def edge_table_names() -> set[tuple[str, str]]:
    """(schema, table) of every edge table in any capability shape (for dropping them)."""
    names: set[tuple[str, str]] = set()
    for variant in DEVICE_CAPABILITY_SCHEMAS:
        metadata = sa.MetaData()
        add_edge_tables(metadata, variant)
        names |= {(t.schema, t.name) for t in metadata.tables.values()}
    return names


def add_edge_tables(md: sa.MetaData, capability_schema: str) -> None:
    """The device and Zun tables; the device capabilities in ``capability_schema``'s shape."""
    sa.Table(
        "devices", md, uuid_pk(),
        sa.Column("name", varchar(), nullable=False, unique=True),
        sa.Column("device_type", sa.String(16), nullable=False),  # ENUM('container','vm','shell')
        sa.Column("device_driver", sa.String(8), nullable=False),  # ENUM('zun','k8s')
        sa.Column("reservable", TINYINT1, nullable=False, default=1),
        *blazar_timestamps(), schema="blazar",
    )
    name_column = "property_id" if capability_schema == "property_id" else "capability_id"
    sa.Table(
        "device_extra_capabilities", md, uuid_pk(),
        sa.Column("device_id", sa.String(36), nullable=False, index=True),
        sa.Column(name_column, varchar(), nullable=False),
        sa.Column("capability_value", MEDIUMTEXT, nullable=False),
        *blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "device_reservations", md, uuid_pk(),
        sa.Column("reservation_id", sa.String(36)), sa.Column("count_range", sa.String(36)),
        sa.Column("resource_properties", MEDIUMTEXT), sa.Column("before_end", sa.String(36)),
        *blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "device_allocations", md, uuid_pk(),
        sa.Column("device_id", sa.String(36), index=True), sa.Column("reservation_id", sa.String(36), index=True),
        *blazar_timestamps(), schema="blazar",
    )
    _zun_tables(md)


def _zun_tables(md: sa.MetaData) -> None:
    stamps = [sa.Column("created_at", DATETIME), sa.Column("updated_at", DATETIME)]
    sa.Table(
        "container", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("uuid", sa.String(36), unique=True), sa.Column("project_id", varchar()), sa.Column("user_id", varchar()),
        sa.Column("name", varchar()), sa.Column("image", varchar()), sa.Column("cpu", sa.Float), sa.Column("memory", varchar()),
        sa.Column("disk", sa.Integer, default=0), sa.Column("status", sa.String(20)),
        sa.Column("status_reason", sa.Text), sa.Column("task_state", sa.String(20)), sa.Column("host", varchar()),
        sa.Column("hostname", sa.String(63)), sa.Column("started_at", DATETIME),
        sa.Column("container_type", sa.Integer, default=0), sa.Column("capsule_id", sa.Integer),
        sa.Column("annotations", MEDIUMTEXT), sa.Column("auto_remove", TINYINT1),
        *[c._copy() for c in stamps], schema="zun",
    )
    sa.Table(
        "container_actions", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("action", varchar()), sa.Column("container_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("request_id", varchar()), sa.Column("user_id", varchar()), sa.Column("project_id", varchar()),
        sa.Column("start_time", DATETIME), sa.Column("finish_time", DATETIME), sa.Column("message", varchar()),
        *[c._copy() for c in stamps], schema="zun",
    )
    sa.Table(
        "container_actions_events", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("event", varchar()), sa.Column("action_id", sa.Integer, nullable=False, index=True),
        sa.Column("start_time", DATETIME), sa.Column("finish_time", DATETIME), sa.Column("result", varchar()),
        sa.Column("traceback", sa.Text), sa.Column("details", sa.Text),
        *[c._copy() for c in stamps], schema="zun",
    )
