"""An edge site's device timeline and what its audit says about device evidence and its limits.

The device timeline is the host timeline's engine run on the device spans (one resource: nodes =
devices), with the same hour-conservation check. The audit's ``devices`` part quantifies what the
databases cannot give back (docs/semantics.md "Devices"):
- ``history_complete_since``: the earliest soft-deleted device row, unless the site's
  ``device_history_complete_since`` says otherwise (``history_decided_by``: data or config; the
  data's answer stays in ``history_derived_since``); before it (Blazar's device tables had no soft
  delete until May 2022) a retired device left no row, so device-hours before it may be missing
  (null: never complete, nothing proves completeness);
- ``retired_without_row``: devices retired before then, known only from allocations naming them
  (counted from their first to their last allocation, model unknown): how many, their counted
  device-hours, and at most how many more of their hours the data lost — before the first
  allocation back to the site's earliest device evidence, after the last one up to
  ``history_complete_since`` (a device never leased left nothing to count);
- allocations and containers whose device or reservation has no row (rejected, with hours);
- ``committed_hours_without_container``: committed device-hours of reservations with no container
  row at all — an upper bound of the occupancy Zun's hard deletes hid (or the reservation was idle);
- ``multi_device_occupied_hours``: occupied device-hours of reservations holding more than one
  device, where the device a container ran on is unknown and every device counts as occupied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from exporter.adapters import blazar_devices, zun_containers
from exporter.columns import LEVEL_COMMITTED, LEVEL_OCCUPIED, LEVEL_TOTAL
from exporter.engine.intervals import hours_between
from exporter.engine.sweepline import order_free_sum
from exporter.reconstruct import audit_timeline as auditing
from exporter.reconstruct import inference, pools
from exporter.reconstruct.timeline import timeline_from_spans

DEVICE_RESOURCE = "nodes"  # device spans carry nodes = 1; the other resources are 0


def device_timeline(devices: pl.DataFrame, audit: dict, *, start: dt.datetime, end: dt.datetime,
                    step: dt.timedelta, snapshot_time: dt.datetime) -> pl.DataFrame:
    """The device leaves (TIMELINE_SCHEMA, resource nodes only); hours conservation checked and
    recorded in ``audit["devices"]["timeline"]``."""
    timeline = timeline_from_spans(devices, start=start, end=end, step=step, open_end=snapshot_time)
    conservation = auditing.hours_conservation(devices, timeline, start=start, end=end, step=step,
                                               open_end=snapshot_time)
    auditing.check_hours_conserved(conservation)
    timeline = timeline.filter(pl.col("resource") == DEVICE_RESOURCE)
    audit.setdefault("devices", {})["timeline"] = {
        "rows": timeline.height, "negative_leaves": auditing.negative_leaves(timeline).height,
        "conservation": conservation.filter(pl.col("resource") == DEVICE_RESOURCE).drop("difference").to_dicts(),
    }
    return timeline


@dataclass(frozen=True)
class DeviceHistory:
    """When the devices table is known to keep retired devices: the audit's record (ISO text, the
    ``history_*`` keys) and its moment (None: never), read from the record once."""
    record: dict
    complete_since: dt.datetime | None


def device_history(frames: Mapping[str, pl.LazyFrame], override: dt.datetime | str | None) -> DeviceHistory:
    """When the devices table is known to keep retired devices, derived and effective (part of the
    audit's ``devices``). Derived: the earliest soft-deleted devices row (none: never complete).
    ``override`` (etc/sites.yaml ``device_history_complete_since``) wins: a date, or ``never``."""
    record = pools.history_record(blazar_devices.earliest_soft_delete(frames), override, blazar_devices.DEVICES)
    return DeviceHistory({f"history_{key}": value for key, value in record.items()}, pools.complete_since(record))


def device_evidence(frames: Mapping[str, pl.LazyFrame], devices: pl.DataFrame, rejected: pl.DataFrame, *,
                    history: DeviceHistory, snapshot_time: dt.datetime) -> dict:
    """The audit's ``devices`` part; ``history`` is :func:`device_history`'s answer."""
    hours = hours_between("start", "end", snapshot_time=snapshot_time)
    deleted = history.complete_since
    device_tables = ("blazar.devices", "blazar.device_allocations", "zun.container", "zun.container_actions")
    lost = (rejected.filter(pl.col("source_table").is_in(device_tables))
            .group_by("level", "source_table", "rejection_reason").agg(pl.len().alias("rows"), order_free_sum(pl.col("hours")))
            .sort("level", "source_table", "rejection_reason"))
    used = zun_containers.container_windows(frames).select("reservation_id").unique().collect()
    committed = devices.filter(pl.col("level") == LEVEL_COMMITTED)
    idle = committed.join(used, on="reservation_id", how="anti")
    width = devices.filter(pl.col("level") == LEVEL_COMMITTED).group_by("reservation_id").agg(
        pl.col("hypervisor_hostname").n_unique().alias("devices"))
    multi = devices.filter(pl.col("level") == LEVEL_OCCUPIED).join(
        width.filter(pl.col("devices") > 1), on="reservation_id", how="semi")
    return {
        "devices_seen": int(devices.filter(pl.col("level") == "total").get_column("hypervisor_hostname").n_unique()),
        **history.record,
        "retired_without_row": retired_without_row(devices, complete_since=deleted, snapshot_time=snapshot_time),
        "rejected": lost.to_dicts(),
        "committed_hours_without_container": float(idle.select(order_free_sum(hours)).item() or 0.0),
        "multi_device_occupied_hours": float(multi.select(order_free_sum(hours)).item() or 0.0),
    }


def retired_without_row(devices: pl.DataFrame, *, complete_since: dt.datetime | None,
                        snapshot_time: dt.datetime) -> dict:
    """Devices counted from allocations alone: count, counted hours, and the bound on their lost
    hours ([earliest device evidence, first allocation) + [last allocation, complete_since);
    null when the history is never complete: then nothing bounds a retirement)."""
    total = devices.filter(pl.col("level") == LEVEL_TOTAL)
    retired = total.filter(pl.col("source_table") == inference.SOURCE)
    hours = hours_between("start", "end", snapshot_time=snapshot_time)
    since = total.get_column("start").min()
    gap = lambda a, b: pl.max_horizontal((b - a).dt.total_seconds(fractional=True) / 3600, pl.lit(0.0))  # noqa: E731
    before = order_free_sum(gap(pl.lit(since), pl.col("start")))
    after = order_free_sum(gap(pl.col("end"), pl.lit(complete_since)))
    bound = None if complete_since is None else float(retired.select(before + after).item() or 0.0)
    return {"devices": retired.get_column("hypervisor_hostname").n_unique(),
            "counted_hours": float(retired.select(order_free_sum(hours)).item() or 0.0),
            "evidence_since": None if since is None else since.isoformat(), "lost_hours_at_most": bound}
