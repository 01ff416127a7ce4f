"""The Blazar tables the generator writes (leases, hosts, capabilities), the legacy usage cache
and the computehosts audit trigger table."""

from __future__ import annotations

import sqlalchemy as sa

from exporter.sitegen.ddl_columns import MEDIUMTEXT, TINYINT1, DATETIME, varchar, blazar_timestamps, uuid_pk


def blazar_tables(md: sa.MetaData) -> None:
    sa.Table(
        "leases", md, uuid_pk(),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("user_id", varchar()), sa.Column("project_id", varchar()),
        sa.Column("start_date", DATETIME, nullable=False),
        sa.Column("end_date", DATETIME, nullable=False),
        sa.Column("trust_id", sa.String(36)), sa.Column("status", varchar()),
        sa.Column("degraded", TINYINT1, nullable=False, default=0),
        *blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "reservations", md, uuid_pk(),
        sa.Column("lease_id", sa.String(36), nullable=False, index=True),
        sa.Column("resource_id", sa.String(36)), sa.Column("resource_type", sa.String(66)),
        sa.Column("status", sa.String(13)),
        sa.Column("missing_resources", TINYINT1, nullable=False, default=0),
        sa.Column("resources_changed", TINYINT1, nullable=False, default=0),
        *blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "computehost_reservations", md, uuid_pk(),
        sa.Column("reservation_id", sa.String(36)), sa.Column("aggregate_id", sa.Integer),
        sa.Column("count_range", sa.String(36)), sa.Column("resource_properties", MEDIUMTEXT),
        sa.Column("hypervisor_properties", MEDIUMTEXT), sa.Column("before_end", sa.String(36)),
        sa.Column("on_start", sa.String(50)),
        *blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "instance_reservations", md, uuid_pk(),
        sa.Column("reservation_id", sa.String(36)),
        sa.Column("vcpus", sa.Integer, nullable=False), sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("disk_gb", sa.Integer, nullable=False), sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("affinity", TINYINT1, nullable=False), sa.Column("resource_properties", MEDIUMTEXT),
        sa.Column("flavor_id", sa.String(36)), sa.Column("aggregate_id", sa.Integer),
        sa.Column("server_group_id", sa.String(36)),
        *blazar_timestamps(), schema="blazar",
    )


def blazar_host_tables(md: sa.MetaData) -> None:
    sa.Table(
        "computehosts", md, uuid_pk(),
        sa.Column("vcpus", sa.Integer, nullable=False), sa.Column("cpu_info", MEDIUMTEXT, nullable=False),
        sa.Column("hypervisor_type", MEDIUMTEXT, nullable=False),
        sa.Column("hypervisor_version", sa.Integer, nullable=False),
        sa.Column("hypervisor_hostname", varchar()), sa.Column("service_name", varchar()),
        sa.Column("memory_mb", sa.Integer, nullable=False), sa.Column("local_gb", sa.Integer, nullable=False),
        sa.Column("status", sa.String(13)),
        sa.Column("availability_zone", varchar(), nullable=False), sa.Column("trust_id", sa.String(36), nullable=False),
        sa.Column("reservable", TINYINT1, nullable=False, default=1),
        sa.Column("disabled", TINYINT1, nullable=False, default=0),
        *blazar_timestamps(), schema="blazar",
    )
    sa.Table(
        "computehost_allocations", md, uuid_pk(),
        sa.Column("compute_host_id", sa.String(36), index=True),
        sa.Column("reservation_id", sa.String(36), index=True),
        *blazar_timestamps(), schema="blazar",
    )


def capability_tables(md: sa.MetaData, variant: str) -> None:
    if variant == "capability_name":
        name_column = sa.Column("capability_name", sa.String(64), nullable=False)
    else:
        name_column = sa.Column(variant, varchar(), nullable=False)
        name_table = "resource_properties" if variant == "property_id" else "extra_capabilities"
        name_key = "property_name" if variant == "property_id" else "capability_name"
        sa.Table(
            name_table, md, uuid_pk(),
            sa.Column("resource_type", varchar(), nullable=False), sa.Column(name_key, varchar(), nullable=False),
            sa.Column("private", TINYINT1, nullable=False, default=0),
            sa.Column("is_unique", TINYINT1, nullable=False, default=0),
            *blazar_timestamps(),
            sa.UniqueConstraint("resource_type", name_key),
            schema="blazar",
        )
    sa.Table(
        "computehost_extra_capabilities", md, uuid_pk(),
        sa.Column("computehost_id", sa.String(36), index=True), name_column,
        sa.Column("capability_value", MEDIUMTEXT, nullable=False),
        *blazar_timestamps(), schema="blazar",
    )


def legacy_tables(md: sa.MetaData) -> None:
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


def audit_tables(md: sa.MetaData) -> None:
    """Chameleon's trigger table for computehosts (generic template: JSON ``data``)."""
    sa.Table(
        "audit_blazar_computehosts", md,
        sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), index=True),
        sa.Column("audit_event_type", sa.String(6), nullable=False),
        sa.Column("audit_event_time", DATETIME), sa.Column("audit_changed_by", varchar()),
        sa.Column("audit_changed_at", DATETIME), sa.Column("data", sa.Text),
        schema="openstack_audit",
    )
