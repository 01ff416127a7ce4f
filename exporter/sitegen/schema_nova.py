"""The Nova and Nova-API tables the generator writes (instances, actions, moves, flavors, specs)."""

from __future__ import annotations

import sqlalchemy as sa

from exporter.sitegen.ddl_columns import MEDIUMTEXT, TINYINT1, DATETIME, varchar, nova_timestamps, int_pk


def nova_tables(md: sa.MetaData) -> None:
    sa.Table(
        "services", md, int_pk(),
        sa.Column("host", varchar()), sa.Column("binary", varchar()), sa.Column("topic", varchar()),
        sa.Column("report_count", sa.Integer, nullable=False),
        sa.Column("disabled", TINYINT1), sa.Column("disabled_reason", varchar()),
        sa.Column("last_seen_up", DATETIME), sa.Column("forced_down", TINYINT1),
        sa.Column("version", sa.Integer), sa.Column("uuid", sa.String(36)),
        *nova_timestamps(), schema="nova",
    )
    sa.Table(
        "compute_nodes", md, int_pk(),
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
        sa.Column("hypervisor_hostname", varchar()), sa.Column("host_ip", sa.String(39)),
        sa.Column("stats", sa.Text), sa.Column("host", varchar()),
        sa.Column("ram_allocation_ratio", sa.Float), sa.Column("cpu_allocation_ratio", sa.Float),
        sa.Column("uuid", sa.String(36)), sa.Column("disk_allocation_ratio", sa.Float),
        sa.Column("mapped", sa.Integer),
        *nova_timestamps(), schema="nova",
    )


def nova_instance_tables(md: sa.MetaData) -> None:
    sa.Table(
        "instances", md, int_pk(),
        sa.Column("user_id", varchar()), sa.Column("project_id", varchar()),
        sa.Column("image_ref", varchar()), sa.Column("launch_index", sa.Integer),
        sa.Column("key_name", varchar()), sa.Column("power_state", sa.Integer),
        sa.Column("vm_state", varchar()), sa.Column("task_state", varchar()),
        sa.Column("memory_mb", sa.Integer), sa.Column("vcpus", sa.Integer),
        sa.Column("root_gb", sa.Integer), sa.Column("ephemeral_gb", sa.Integer),
        sa.Column("hostname", varchar()), sa.Column("host", varchar()), sa.Column("node", varchar()),
        sa.Column("instance_type_id", sa.Integer), sa.Column("reservation_id", varchar()),
        sa.Column("launched_at", DATETIME), sa.Column("terminated_at", DATETIME),
        sa.Column("availability_zone", varchar()), sa.Column("display_name", varchar()),
        sa.Column("launched_on", MEDIUMTEXT), sa.Column("locked", TINYINT1),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("cleaned", sa.Integer), sa.Column("hidden", TINYINT1),
        *nova_timestamps(), schema="nova",
    )
    sa.Table(
        "instance_actions", md, int_pk(),
        sa.Column("action", varchar()), sa.Column("instance_uuid", sa.String(36), index=True),
        sa.Column("request_id", varchar()), sa.Column("user_id", varchar()), sa.Column("project_id", varchar()),
        sa.Column("start_time", DATETIME), sa.Column("finish_time", DATETIME),
        sa.Column("message", varchar()),
        *nova_timestamps(), schema="nova",
    )
    sa.Table(
        "instance_actions_events", md, int_pk(),
        sa.Column("event", varchar()), sa.Column("action_id", sa.Integer, index=True),
        sa.Column("start_time", DATETIME), sa.Column("finish_time", DATETIME),
        sa.Column("result", varchar()), sa.Column("traceback", sa.Text), sa.Column("host", varchar()),
        sa.Column("details", sa.Text),
        *nova_timestamps(), schema="nova",
    )


def nova_move_tables(md: sa.MetaData) -> None:
    """``migrations`` (Nova's models) and ``instance_extra`` (only the columns sizes need)."""
    sa.Table(
        "migrations", md, int_pk(),
        sa.Column("source_compute", varchar()), sa.Column("dest_compute", varchar()),
        sa.Column("source_node", varchar()), sa.Column("dest_node", varchar()), sa.Column("dest_host", varchar()),
        sa.Column("old_instance_type_id", sa.Integer), sa.Column("new_instance_type_id", sa.Integer),
        sa.Column("instance_uuid", sa.String(36), index=True), sa.Column("uuid", sa.String(36)),
        sa.Column("status", varchar()),
        sa.Column("migration_type", sa.Enum("migration", "resize", "live-migration", "evacuation",
                                            name="migration_type")),
        sa.Column("hidden", TINYINT1), sa.Column("cross_cell_move", TINYINT1),
        sa.Column("user_id", varchar()), sa.Column("project_id", varchar()),
        *nova_timestamps(), schema="nova",
    )
    sa.Table(
        "instance_extra", md, int_pk(),
        sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("flavor", sa.Text),
        *nova_timestamps(), schema="nova",
    )


def nova_api_tables(md: sa.MetaData) -> None:
    sa.Table(
        "flavors", md,
        sa.Column("created_at", DATETIME), sa.Column("updated_at", DATETIME),
        sa.Column("name", varchar(), nullable=False, unique=True), int_pk(),
        sa.Column("memory_mb", sa.Integer, nullable=False), sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("swap", sa.Integer, nullable=False), sa.Column("vcpu_weight", sa.Integer),
        sa.Column("flavorid", varchar(), nullable=False, unique=True), sa.Column("rxtx_factor", sa.Float),
        sa.Column("root_gb", sa.Integer), sa.Column("ephemeral_gb", sa.Integer),
        sa.Column("disabled", TINYINT1), sa.Column("is_public", TINYINT1), sa.Column("description", sa.Text),
        schema="nova_api",
    )
    sa.Table(
        "request_specs", md,
        sa.Column("created_at", DATETIME), sa.Column("updated_at", DATETIME),
        int_pk(),
        sa.Column("instance_uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("spec", MEDIUMTEXT, nullable=False),
        schema="nova_api",
    )
