"""Blazar devices (CHI@Edge, Chameleon fork): device existence, hardware model, device allocations.

A device exists (total) from its ``devices`` row's created_at to its deleted_at (soft delete only
since May 2022: a device retired before has no row). It is reservable for the same window;
``reservable = 0`` (the k8s plugin marks a failing device unreservable; only the current value
is stored) makes it maintenance from the row's updated_at (else created_at) on. A device
allocation naming a device with no row, whose window ends before the table is known to keep
retired devices (``history_complete_since``: the earliest soft-deleted row, or the site's
``device_history_complete_since`` setting), is an allocation of a device retired before May
2022 (``retired_device``): it still counts, and names the device by its id. Its hardware model
is its ``machine_name`` capability (set by Chameleon's inventory service doni); ``unknown`` when
it has none. A device allocation is committed (maintenance for a maintenance project's lease)
for its lease's window, as host allocations are (exporter.adapters.blazar_leases).
Rules in words: docs/semantics.md "Devices".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from exporter.adapters import blazar_leases, common
from exporter.adapters.declared import TIMESTAMPS, SourceTable
from exporter.columns import LEVEL_COMMITTED, LEVEL_MAINTENANCE, UNKNOWN_NODE_TYPE

READS = (
    SourceTable("blazar", "devices", ("id", "name", "device_type", "device_driver", "reservable", *TIMESTAMPS),
                optional=True, required=("id", "name", "created_at"),
                description="Blazar devices (CHI@Edge); deleted_at only since May 2022"),
    SourceTable("blazar", "device_extra_capabilities",
                ("id", "device_id", "capability_id", "property_id", "capability_value", *TIMESTAMPS),
                optional=True, required=("device_id", "capability_value"),
                description="device capabilities (machine_name ...); capability_id renamed property_id in 2024"),
    SourceTable("blazar", "device_reservations",
                ("id", "reservation_id", "count_range", "resource_properties", "before_end", *TIMESTAMPS),
                optional=True, child_of=blazar_leases.OF_RESERVATION,
                description="device reservation requests (how many devices, which properties)"),
    SourceTable("blazar", "device_allocations", ("id", "device_id", "reservation_id", *TIMESTAMPS),
                optional=True, required=("id", "device_id", "reservation_id"), child_of=blazar_leases.OF_RESERVATION,
                spans_end=("deleted_at",), description="device<->reservation; soft-deleted at lease end"),
)

DEVICES = "blazar.devices"
DEVICE_ALLOCATIONS = "blazar.device_allocations"
MODEL_CAPABILITY = "machine_name"  # doni's BlazarDeviceWorker; e.g. raspberrypi4-64, jetson-nano


def present(tables: Mapping[str, pl.LazyFrame]) -> bool:
    """Whether the site has device rows at all (an edge site)."""
    frame = tables.get(DEVICES)
    return frame is not None and bool(frame.select(pl.len()).collect().item())


def device_windows(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """One row per devices row: [created_at, deleted_at) with its rejection reason (null: usable).

    Output: source_table, source_id, entity_id, hypervisor_hostname (the device name), start, end,
    reservable_until (updated_at when reservable = 0), rejection_reason.
    """
    rows = common.table_rows(tables, DEVICES, {
        "id": common.ID, "name": common.TEXT, "reservable": common.NUMBER, "created_at": common.WHEN,
        "updated_at": common.WHEN, "deleted_at": common.WHEN})
    return rows.select(
        pl.lit(DEVICES).alias("source_table"), pl.col("id").alias("source_id"), pl.col("id").alias("entity_id"),
        pl.col("name").alias("hypervisor_hostname"), pl.col("created_at").alias("start"),
        pl.col("deleted_at").alias("end"),
        pl.when(pl.col("reservable") == 0).then(pl.coalesce("updated_at", "created_at")).alias("reservable_until"),
    ).with_columns(common.first_rule_failed([
        *common.start_rules(),
        ("missing_host", pl.col("hypervisor_hostname").is_null() | (pl.col("hypervisor_hostname") == "")),
        *common.range_rules(),
    ]))


def earliest_soft_delete(tables: Mapping[str, pl.LazyFrame]) -> dict | None:
    """The usable devices row deleted first (``end``, ``source_id``): from its deleted_at on the table
    keeps retired devices (soft delete); before it a retired device may have left no row. None: no
    row was ever soft-deleted, so nothing shows the table complete."""
    usable = device_windows(tables).filter(pl.col("rejection_reason").is_null() & pl.col("end").is_not_null())
    first = usable.sort("end", *common.id_order("source_id")).select("end", "source_id").head(1).collect()
    return first.row(0, named=True) if first.height else None


def device_reject_detail() -> pl.Expr:
    return common.detail_json("hypervisor_hostname", "start", "end")


def device_models(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """entity_id (device id), node_type (its machine_name; newest non-empty row wins; else unknown)."""
    caps = common.table_rows(tables, "blazar.device_extra_capabilities", {
        "id": common.ID, "device_id": common.ID, "capability_id": common.ID, "property_id": common.ID,
        "capability_value": common.TEXT, "created_at": common.WHEN, "updated_at": common.WHEN})
    # Each id is looked up in its own table: the two tables' ids may coincide, and a row must not
    # take a name from the other table (or two names, one per table).
    named = (caps.join(common.names_by_id(tables, "blazar.resource_properties", "property_name"), left_on="property_id",
                       right_on="name_id", how="left")
             .join(common.names_by_id(tables, "blazar.extra_capabilities", "capability_name"), left_on="capability_id",
                   right_on="name_id", how="left", suffix="_of_capability")
             .with_columns(pl.when(pl.col("property_id").is_not_null()).then(pl.col("name"))
                           .otherwise(pl.col("name_of_capability")).alias("name"))
             .filter((pl.col("name") == MODEL_CAPABILITY) & (pl.col("capability_value").str.strip_chars() != "")))
    models = (named.sort(pl.coalesce("updated_at", "created_at"), *common.id_order("id"), nulls_last=False)
              .group_by("device_id").agg(pl.col("capability_value").str.strip_chars().last().alias("node_type")))
    devices = common.table_rows(tables, DEVICES, {"id": common.ID}).select(pl.col("id").alias("entity_id"))
    return devices.join(models, left_on="entity_id", right_on="device_id", how="left").select(
        "entity_id", pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE)).unique("entity_id", keep="first")


def allocation_windows(tables: Mapping[str, pl.LazyFrame], *, maintenance_projects: Sequence[str],
                       complete_since: dt.datetime | None) -> pl.LazyFrame:
    """One row per device allocation: [max(lease start, created_at), min(lease end, lease deleted_at,
    allocation deleted_at)), level committed or maintenance, or why it has none (as host allocations).
    ``complete_since``: when the devices table is known to keep retired devices (None: never).

    Output: source_table, source_id, entity_id (the device id), hypervisor_hostname (the device's
    name; its id for a retired device), project_id, lease_id, reservation_id, start, end, level,
    retired_device, rejection_reason and the joined raw times.
    """
    rows = common.table_rows(tables, DEVICE_ALLOCATIONS, {
        "id": common.ID, "device_id": common.ID, "reservation_id": common.ID, "created_at": common.WHEN,
        "deleted_at": common.WHEN})
    devices = common.table_rows(tables, DEVICES, {"id": common.ID, "name": common.TEXT}).unique("id", keep="first")
    joined = (
        rows.select(pl.lit(DEVICE_ALLOCATIONS).alias("source_table"), pl.col("id").alias("source_id"),
                    pl.col("device_id").alias("entity_id"), "reservation_id",
                    pl.col("created_at").alias("allocation_created"), pl.col("deleted_at").alias("allocation_deleted"))
        .join(blazar_leases.reservation_rows(tables), on="reservation_id", how="left")
        .join(blazar_leases.lease_rows(tables), on="lease_id", how="left")
        .join(devices.select(pl.col("id").alias("entity_id"), pl.col("name").alias("hypervisor_hostname"),
                             pl.lit(True).alias("device_found")), on="entity_id", how="left")
        .with_columns(pl.col("reservation_found", "lease_found", "device_found").fill_null(False))
        .with_columns(
            pl.max_horizontal("lease_start", "allocation_created").alias("start"),
            pl.min_horizontal("lease_end", "lease_deleted", "allocation_deleted").alias("end"),
            pl.when(pl.col("project_id").is_in(list(maintenance_projects)))
            .then(pl.lit(LEVEL_MAINTENANCE)).otherwise(pl.lit(LEVEL_COMMITTED)).alias("level"))
    )
    # Rowless and over before the table kept retired devices: a device retired before soft delete.
    before_complete = (pl.lit(True) if complete_since is None
                       else pl.col("end") <= pl.lit(complete_since, dtype=common.TIME))
    retired = (~pl.col("device_found") & pl.col("entity_id").is_not_null() & pl.col("end").is_not_null()
               & before_complete).fill_null(False)
    return joined.with_columns(retired.alias("retired_device")).with_columns(
        (pl.col("device_found") | pl.col("retired_device")).alias("host_found"),
        pl.when(pl.col("retired_device")).then(pl.col("entity_id")).otherwise(pl.col("hypervisor_hostname"))
        .alias("hypervisor_hostname"),
    ).with_columns(common.first_rule_failed(blazar_leases.allocation_rules()))


def allocation_reject_detail() -> pl.Expr:
    return common.detail_json("reservation_id", "reservation_found", "lease_id", "lease_found", "entity_id",
                              "host_found", "retired_device", "lease_start", "lease_end", "lease_deleted", "allocation_created",
                              "allocation_deleted")
