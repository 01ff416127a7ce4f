"""SQLAlchemy Core definitions of the Nova / Nova-API / Blazar tables the generator writes.

Column names, types and nullability follow the real DDL (see
``shared/reference/openstack-schema.md`` §2-§4, §11): Nova soft delete is ``deleted INT``
(0 live, = id when deleted); the Chameleon Blazar fork uses ``deleted VARCHAR(36) NULL``
(NULL live, = the row's id when deleted). MySQL-only types (MEDIUMTEXT, TINYINT(1)) are
variants, so the same tables render on SQLite.

``capability_tables(kind)`` returns the host-capability tables for one of the three historical
schemas: ``property_id`` (``resource_properties``), ``capability_id`` (``extra_capabilities``)
or ``capability_name`` (name in the row itself).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

CAPABILITY_SCHEMAS = ("property_id", "capability_id", "capability_name")

MEDIUMTEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
TINYINT1 = sa.Integer().with_variant(mysql.TINYINT(1), "mysql", "mariadb")
DATETIME = sa.DateTime()


def _s(length: int = 255) -> sa.String:
    return sa.String(length)


def _nova_timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", DATETIME, nullable=True),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.Column("deleted_at", DATETIME, nullable=True),
        sa.Column("deleted", sa.Integer, nullable=True, default=0),
    ]


def _blazar_timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", DATETIME, nullable=True),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.Column("deleted", sa.String(36), nullable=True),
        sa.Column("deleted_at", DATETIME, nullable=True),
    ]


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


def _uuid_pk() -> sa.Column:
    return sa.Column("id", sa.String(36), primary_key=True)


def _int_pk() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)


def build_metadata(capability_schema: str = "property_id", *, upstream_blazar: bool = False) -> sa.MetaData:
    """All tables for one generated site, with the chosen capability schema.

    ``upstream_blazar``: the Blazar tables as upstream Blazar has them (no soft-delete
    columns, none of the Chameleon fork's additions).
    """
    if capability_schema not in CAPABILITY_SCHEMAS:
        raise ValueError(f"capability_schema must be one of {CAPABILITY_SCHEMAS}")
    md = sa.MetaData()
    _nova_tables(md)
    _nova_instance_tables(md)
    _nova_move_tables(md)
    _nova_api_tables(md)
    _blazar_tables(md)
    _blazar_host_tables(md)
    _capability_tables(md, capability_schema)
    _legacy_tables(md)
    _audit_tables(md)
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


def _nova_tables(md: sa.MetaData) -> None:
    sa.Table(
        "services", md, _int_pk(),
        sa.Column("host", _s()), sa.Column("binary", _s()), sa.Column("topic", _s()),
        sa.Column("report_count", sa.Integer, nullable=False),
        sa.Column("disabled", TINYINT1), sa.Column("disabled_reason", _s()),
        sa.Column("last_seen_up", DATETIME), sa.Column("forced_down", TINYINT1),
        sa.Column("version", sa.Integer), sa.Column("uuid", sa.String(36)),
        *_nova_timestamps(), schema="nova",
    )
    sa.Table(
        "compute_nodes", md, _int_pk(),
        sa.Column("service_id", sa.Integer),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("local_gb", sa.Integer, nullable=False),
        sa.Column("vcpus_used", sa.Integer, nullable=False),
        sa.Column("memory_mb_used", sa.Integer, nullable=False),
        sa.Column("local_gb_used", sa.Integer, nullable=False),
        sa.Column("hypervisor_type", MEDIUMTEXT, nullable=False),
        sa.Column("hypervisor_version", sa.Integer, nullable=False),
        sa.Column("cpu_info", MEDIUMTEXT, nullable=False),
        sa.Column("disk_available_least", sa.Integer), sa.Column("free_ram_mb", sa.Integer),
        sa.Column("free_disk_gb", sa.Integer), sa.Column("current_workload", sa.Integer),
        sa.Column("running_vms", sa.Integer),
        sa.Column("hypervisor_hostname", _s()), sa.Column("host_ip", sa.String(39)),
        sa.Column("stats", sa.Text), sa.Column("host", _s()),
        sa.Column("ram_allocation_ratio", sa.Float), sa.Column("cpu_allocation_ratio", sa.Float),
        sa.Column("uuid", sa.String(36)), sa.Column("disk_allocation_ratio", sa.Float),
        sa.Column("mapped", sa.Integer),
        *_nova_timestamps(), schema="nova",
    )


def _nova_instance_tables(md: sa.MetaData) -> None:
    sa.Table(
        "instances", md, _int_pk(),
        sa.Column("user_id", _s()), sa.Column("project_id", _s()),
        sa.Column("image_ref", _s()), sa.Column("launch_index", sa.Integer),
        sa.Column("key_name", _s()), sa.Column("power_state", sa.Integer),
        sa.Column("vm_state", _s()), sa.Column("task_state", _s()),
        sa.Column("memory_mb", sa.Integer), sa.Column("vcpus", sa.Integer),
        sa.Column("root_gb", sa.Integer), sa.Column("ephemeral_gb", sa.Integer),
        sa.Column("hostname", _s()), sa.Column("host", _s()), sa.Column("node", _s()),
        sa.Column("instance_type_id", sa.Integer), sa.Column("reservation_id", _s()),
        sa.Column("launched_at", DATETIME), sa.Column("terminated_at", DATETIME),
        sa.Column("availability_zone", _s()), sa.Column("display_name", _s()),
        sa.Column("launched_on", MEDIUMTEXT), sa.Column("locked", TINYINT1),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("cleaned", sa.Integer), sa.Column("hidden", TINYINT1),
        *_nova_timestamps(), schema="nova",
    )
    sa.Table(
        "instance_actions", md, _int_pk(),
        sa.Column("action", _s()), sa.Column("instance_uuid", sa.String(36), index=True),
        sa.Column("request_id", _s()), sa.Column("user_id", _s()), sa.Column("project_id", _s()),
        sa.Column("start_time", DATETIME), sa.Column("finish_time", DATETIME),
        sa.Column("message", _s()),
        *_nova_timestamps(), schema="nova",
    )
    sa.Table(
        "instance_actions_events", md, _int_pk(),
        sa.Column("event", _s()), sa.Column("action_id", sa.Integer, index=True),
        sa.Column("start_time", DATETIME), sa.Column("finish_time", DATETIME),
        sa.Column("result", _s()), sa.Column("traceback", sa.Text), sa.Column("host", _s()),
        sa.Column("details", sa.Text),
        *_nova_timestamps(), schema="nova",
    )


def _nova_move_tables(md: sa.MetaData) -> None:
    """``migrations`` (Nova's models) and ``instance_extra`` (only the columns sizes need)."""
    sa.Table(
        "migrations", md, _int_pk(),
        sa.Column("source_compute", _s()), sa.Column("dest_compute", _s()),
        sa.Column("source_node", _s()), sa.Column("dest_node", _s()), sa.Column("dest_host", _s()),
        sa.Column("old_instance_type_id", sa.Integer), sa.Column("new_instance_type_id", sa.Integer),
        sa.Column("instance_uuid", sa.String(36), index=True), sa.Column("uuid", sa.String(36)),
        sa.Column("status", _s()),
        sa.Column("migration_type", sa.Enum("migration", "resize", "live-migration", "evacuation",
                                            name="migration_type")),
        sa.Column("hidden", TINYINT1), sa.Column("cross_cell_move", TINYINT1),
        sa.Column("user_id", _s()), sa.Column("project_id", _s()),
        *_nova_timestamps(), schema="nova",
    )
    sa.Table(
        "instance_extra", md, _int_pk(),
        sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("flavor", sa.Text),
        *_nova_timestamps(), schema="nova",
    )


def _nova_api_tables(md: sa.MetaData) -> None:
    sa.Table(
        "flavors", md,
        sa.Column("created_at", DATETIME), sa.Column("updated_at", DATETIME),
        sa.Column("name", _s(), nullable=False, unique=True), _int_pk(),
        sa.Column("memory_mb", sa.Integer, nullable=False), sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("swap", sa.Integer, nullable=False), sa.Column("vcpu_weight", sa.Integer),
        sa.Column("flavorid", _s(), nullable=False, unique=True), sa.Column("rxtx_factor", sa.Float),
        sa.Column("root_gb", sa.Integer), sa.Column("ephemeral_gb", sa.Integer),
        sa.Column("disabled", TINYINT1), sa.Column("is_public", TINYINT1), sa.Column("description", sa.Text),
        schema="nova_api",
    )
    sa.Table(
        "request_specs", md,
        sa.Column("created_at", DATETIME), sa.Column("updated_at", DATETIME),
        _int_pk(),
        sa.Column("instance_uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("spec", MEDIUMTEXT, nullable=False),
        schema="nova_api",
    )


def _blazar_tables(md: sa.MetaData) -> None:
    sa.Table(
        "leases", md, _uuid_pk(),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("user_id", _s()), sa.Column("project_id", _s()),
        sa.Column("start_date", DATETIME, nullable=False),
        sa.Column("end_date", DATETIME, nullable=False),
        sa.Column("trust_id", sa.String(36)), sa.Column("status", _s()),
        sa.Column("degraded", TINYINT1, nullable=False, default=0),
        *_blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "reservations", md, _uuid_pk(),
        sa.Column("lease_id", sa.String(36), nullable=False, index=True),
        sa.Column("resource_id", sa.String(36)), sa.Column("resource_type", sa.String(66)),
        sa.Column("status", sa.String(13)),
        sa.Column("missing_resources", TINYINT1, nullable=False, default=0),
        sa.Column("resources_changed", TINYINT1, nullable=False, default=0),
        *_blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "computehost_reservations", md, _uuid_pk(),
        sa.Column("reservation_id", sa.String(36)), sa.Column("aggregate_id", sa.Integer),
        sa.Column("count_range", sa.String(36)), sa.Column("resource_properties", MEDIUMTEXT),
        sa.Column("hypervisor_properties", MEDIUMTEXT), sa.Column("before_end", sa.String(36)),
        sa.Column("on_start", sa.String(50)),
        *_blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "instance_reservations", md, _uuid_pk(),
        sa.Column("reservation_id", sa.String(36)),
        sa.Column("vcpus", sa.Integer, nullable=False), sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("disk_gb", sa.Integer, nullable=False), sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("affinity", TINYINT1, nullable=False), sa.Column("resource_properties", MEDIUMTEXT),
        sa.Column("flavor_id", sa.String(36)), sa.Column("aggregate_id", sa.Integer),
        sa.Column("server_group_id", sa.String(36)),
        *_blazar_timestamps(), schema="blazar",
    )


def _blazar_host_tables(md: sa.MetaData) -> None:
    sa.Table(
        "computehosts", md, _uuid_pk(),
        sa.Column("vcpus", sa.Integer, nullable=False), sa.Column("cpu_info", MEDIUMTEXT, nullable=False),
        sa.Column("hypervisor_type", MEDIUMTEXT, nullable=False),
        sa.Column("hypervisor_version", sa.Integer, nullable=False),
        sa.Column("hypervisor_hostname", _s()), sa.Column("service_name", _s()),
        sa.Column("memory_mb", sa.Integer, nullable=False), sa.Column("local_gb", sa.Integer, nullable=False),
        sa.Column("status", sa.String(13)),
        sa.Column("availability_zone", _s(), nullable=False), sa.Column("trust_id", sa.String(36), nullable=False),
        sa.Column("reservable", TINYINT1, nullable=False, default=1),
        sa.Column("disabled", TINYINT1, nullable=False, default=0),
        *_blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "computehost_allocations", md, _uuid_pk(),
        sa.Column("compute_host_id", sa.String(36), index=True),
        sa.Column("reservation_id", sa.String(36), index=True),
        *_blazar_timestamps(), schema="blazar",
    )


def _capability_tables(md: sa.MetaData, variant: str) -> None:
    if variant == "capability_name":
        name_column = sa.Column("capability_name", sa.String(64), nullable=False)
    else:
        name_column = sa.Column(variant, _s(), nullable=False)
        name_table = "resource_properties" if variant == "property_id" else "extra_capabilities"
        name_key = "property_name" if variant == "property_id" else "capability_name"
        sa.Table(
            name_table, md, _uuid_pk(),
            sa.Column("resource_type", _s(), nullable=False), sa.Column(name_key, _s(), nullable=False),
            sa.Column("private", TINYINT1, nullable=False, default=0),
            sa.Column("is_unique", TINYINT1, nullable=False, default=0),
            *_blazar_timestamps(),
            sa.UniqueConstraint("resource_type", name_key),
            schema="blazar",
        )
    sa.Table(
        "computehost_extra_capabilities", md, _uuid_pk(),
        sa.Column("computehost_id", sa.String(36), index=True), name_column,
        sa.Column("capability_value", MEDIUMTEXT, nullable=False),
        *_blazar_timestamps(), schema="blazar",
    )


def _legacy_tables(md: sa.MetaData) -> None:
    sa.Table(
        "node_usage_report_cache", md,
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("node_type", sa.String(255), primary_key=True),
        sa.Column("maint_hours", sa.Float, nullable=False),
        sa.Column("reserved_hours", sa.Float, nullable=False),
        sa.Column("used_hours", sa.Float, nullable=False),
        sa.Column("idle_hours", sa.Float, nullable=False),
        sa.Column("total_hours", sa.Float, nullable=False),
        schema="chameleon_usage",
    )


def _audit_tables(md: sa.MetaData) -> None:
    """Chameleon's trigger table for computehosts (generic template: JSON ``data``)."""
    sa.Table(
        "audit_blazar_computehosts", md,
        sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), index=True),
        sa.Column("audit_event_type", sa.String(6), nullable=False),
        sa.Column("audit_event_time", DATETIME), sa.Column("audit_changed_by", _s()),
        sa.Column("audit_changed_at", DATETIME), sa.Column("data", sa.Text),
        schema="openstack_audit",
    )
