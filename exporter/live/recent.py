"""Only the rows whose spans can reach past a cut-off: what an incremental refresh recomputes.

Between full reloads the live exporter integrates history once, up to a cut-off C (the last full
reload), and afterwards recomputes only spans that can cover time at or after C. A row can be
left out when every span it could evidence ends before C:

- an instance whose ``deleted_at`` or ``terminated_at`` is before C (its span ends at the first
  of them), with its actions, their events, its request spec, migrations and embedded flavors;
- a lease whose ``end_date`` or ``deleted_at`` is before C, with its reservations, their
  allocations and instance reservations; an allocation deleted before C.

Everything else is kept, including rows that will turn out to end before C: keeping a row never
changes what happens at or after C (rows that end before C can only trim or merge time before
C), so the filter only has to be conservative. Host tables are kept whole: every span is
clipped into its host's. Tables not named here pass through unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

INSTANCE_TABLES = ("nova.instances", "nova.shadow_instances")
ACTION_TABLES = ("nova.instance_actions", "nova.shadow_instance_actions")
EVENT_TABLES = ("nova.instance_actions_events", "nova.shadow_instance_actions_events")
# keyed by instance uuid: the request spec, moves and embedded flavors of an instance
INSTANCE_CHILDREN = ("nova_api.request_specs", "nova.migrations", "nova.shadow_migrations", "nova.instance_extra")


def open_at(frame: pl.DataFrame, cutoff: dt.datetime, *columns: str) -> pl.Expr:
    """Rows where every present ``columns`` value is null or at/after ``cutoff``."""
    limit = pl.lit(cutoff, dtype=pl.Datetime("us"))
    conditions = [pl.col(c).is_null() | (pl.col(c) >= limit) for c in columns if c in frame.columns]
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def recent_tables(tables: Mapping[str, pl.DataFrame], *, cutoff: dt.datetime) -> dict[str, pl.DataFrame]:
    """``tables`` without the rows whose spans all end before ``cutoff`` (see module docstring)."""
    out = dict(tables)
    _keep_recent_instances(out, cutoff)
    _keep_recent_leases(out, cutoff)
    return out


def _keep_recent_instances(out: dict[str, pl.DataFrame], cutoff: dt.datetime) -> None:
    for name in _present(out, INSTANCE_TABLES):
        out[name] = out[name].filter(open_at(out[name], cutoff, "deleted_at", "terminated_at"))
    uuids = _values(out, INSTANCE_TABLES, "uuid", pl.String())
    for name in _present(out, ACTION_TABLES):
        out[name] = out[name].filter(pl.col("instance_uuid").is_in(uuids.implode()))
    action_ids = _values(out, ACTION_TABLES, "id", pl.Int64())
    for name in _present(out, EVENT_TABLES):
        out[name] = out[name].filter(pl.col("action_id").is_in(action_ids.implode()))
    for name in _present(out, INSTANCE_CHILDREN):
        out[name] = out[name].filter(pl.col("instance_uuid").is_in(uuids.implode()))


def _keep_recent_leases(out: dict[str, pl.DataFrame], cutoff: dt.datetime) -> None:
    if "blazar.leases" not in out:
        return
    leases = out["blazar.leases"]
    out["blazar.leases"] = leases.filter(open_at(leases, cutoff, "end_date", "deleted_at"))
    lease_ids = out["blazar.leases"]["id"]
    if "blazar.reservations" in out:
        out["blazar.reservations"] = out["blazar.reservations"].filter(pl.col("lease_id").is_in(lease_ids.implode()))
    reservation_ids = out["blazar.reservations"]["id"] if "blazar.reservations" in out else lease_ids.clear()
    if "blazar.computehost_allocations" in out:
        allocations = out["blazar.computehost_allocations"]
        out["blazar.computehost_allocations"] = allocations.filter(
            pl.col("reservation_id").is_in(reservation_ids.implode()) & open_at(allocations, cutoff, "deleted_at"))
    if "blazar.instance_reservations" in out:
        slots = out["blazar.instance_reservations"]
        out["blazar.instance_reservations"] = slots.filter(pl.col("reservation_id").is_in(reservation_ids.implode()))


def _present(out: Mapping[str, pl.DataFrame], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in out and out[name].width]


def _values(out: Mapping[str, pl.DataFrame], names: tuple[str, ...], column: str, dtype: pl.DataType) -> pl.Series:
    parts = [out[name][column].cast(dtype) for name in _present(out, names) if column in out[name].columns]
    return pl.concat(parts).unique() if parts else pl.Series(column, [], dtype=dtype)
