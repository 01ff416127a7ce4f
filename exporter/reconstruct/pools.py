"""Pool membership with three values: reservable, ondemand, unknown (docs/semantics.md, "Pools").

A host's time is *reservable* where the reservable level speaks (its Blazar row, inference or
a ``set_pool: reservable`` rule). It is *ondemand* only on positive evidence that the host was
outside Blazar — the ``ondemand`` level built here:

- Blazar's host history is complete then (``blazar_complete_since``) and holds no row of the host;
- an on-demand (non-reserved) instance ran on the host;
- an operator's ``set_pool: ondemand`` rule.

Every other hour of the host's total is *unknown* (total − reservable − ondemand, the leaf table's
``unknown/available``): typically the hard-delete era, before Blazar kept soft-deleted rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from exporter.columns import BOOKING_ONDEMAND, LEVEL_ONDEMAND, POOL_UNKNOWN
from exporter.engine import intervals
from exporter.engine.sweepline import exact_sum
from exporter.reconstruct import host_levels
from exporter.reconstruct.books import SpanBooks
from exporter.reconstruct.policy import Policy

HOST_KEY = ["hypervisor_hostname"]
BLAZAR_HOSTS = "blazar.computehosts"
INSTANCES = "nova.instances"
NEVER = "never"  # etc/sites.yaml ``*_complete_since: never``: that history is never complete
_STAMP = "%Y%m%dT%H%M%S"


def blazar_history(hosts: pl.DataFrame, override: dt.datetime | str | None) -> dict:
    """When Blazar's host history is complete, derived and effective (the audit's ``blazar_history``).

    Derived: the earliest ``deleted_at`` of a usable ``blazar.computehosts`` row — a table that
    keeps deleted rows from some date on holds every host enrolled at or after it. No soft-deleted
    row (upstream Blazar hard-deletes) -> never complete. ``override`` (etc/sites.yaml) wins:
    a date, or ``never``.
    """
    deleted = hosts.filter((pl.col("source_table") == BLAZAR_HOSTS) & pl.col("rejection_reason").is_null()
                           & pl.col("end").is_not_null()).sort("end", "source_id")
    return history_record(deleted.row(0, named=True) if deleted.height else None, override, BLAZAR_HOSTS)


def history_record(derived: dict | None, override: dt.datetime | str | None, table: str) -> dict:
    """A history's completeness for the audit: the moment used, who decided it, and what the data
    says (``derived``: the earliest soft-deleted row of ``table``, with ``end`` and ``source_id``)."""
    since, how = decided_since(None if derived is None else derived["end"], override)
    return {
        "complete_since": None if since is None else since.isoformat(),
        "decided_by": how,
        "derived_since": None if derived is None else derived["end"].isoformat(),
        "derived_from": None if derived is None else f"{table} id {derived['source_id']} (earliest deleted_at)",
    }


def decided_since(derived: dt.datetime | None, override: dt.datetime | str | None) -> tuple[dt.datetime | None, str]:
    """The moment a history is complete and who decided it: the data's, unless the site's config
    gives one (a date, or ``never``)."""
    if override is None:
        return derived, "data"
    return (None if override == NEVER else override), "config"


def complete_since(history: dict) -> dt.datetime | None:
    """The moment of a :func:`history_record`, as a datetime."""
    value = history["complete_since"]
    return None if value is None else dt.datetime.fromisoformat(value)


def absence_windows(hosts: pl.DataFrame, host_names: Sequence[str], since: dt.datetime | None, *,
                    snapshot_time: dt.datetime) -> pl.DataFrame:
    """Per host, the time from ``since`` on that no usable Blazar row of it covers (adapter windows)."""
    if since is None or since >= snapshot_time or not host_names:
        return _windows(pl.DataFrame(schema={"hypervisor_hostname": pl.String, "start": pl.Datetime("us"),
                                             "end": pl.Datetime("us")}), BLAZAR_HOSTS, "absent")
    era = pl.DataFrame({"hypervisor_hostname": list(host_names)}).with_columns(
        pl.lit(since, dtype=pl.Datetime("us")).alias("start"), pl.lit(None, dtype=pl.Datetime("us")).alias("end"))
    rows = hosts.filter((pl.col("source_table") == BLAZAR_HOSTS) & pl.col("rejection_reason").is_null()).select(
        *HOST_KEY, "start", "end")
    _, outside = intervals.clip_to_parent(era.lazy(), rows.lazy(), by=HOST_KEY, open_end=snapshot_time)
    return _windows(outside.select(*HOST_KEY, "start", "end").collect(), BLAZAR_HOSTS, "absent")


def instance_windows(occupied: pl.DataFrame) -> pl.DataFrame:
    """Per host, the union of the time on-demand instances occupied it (adapter windows)."""
    ondemand = occupied.filter(pl.col("booking") == BOOKING_ONDEMAND).select(*HOST_KEY, "start", "end")
    merged = intervals.union_intervals(ondemand.lazy(), by=HOST_KEY).collect()
    return _windows(merged, INSTANCES, "ondemand-instances")


def _windows(frame: pl.DataFrame, table: str, kind: str) -> pl.DataFrame:
    """``hypervisor_hostname, start, end`` as the ondemand level's raw windows from ``table``."""
    return frame.sort(*HOST_KEY, "start").select(
        pl.lit(table).alias("source_table"),
        pl.format("{}:{}@{}", pl.lit(kind), "hypervisor_hostname", pl.col("start").dt.strftime(_STAMP))
        .alias("source_id"),
        pl.col("hypervisor_hostname").alias("entity_id"), *HOST_KEY,
        pl.col("start").cast(pl.Datetime("us")), pl.col("end").cast(pl.Datetime("us")),
        pl.lit(LEVEL_ONDEMAND).alias("level"), pl.lit(None, dtype=pl.String).alias("rejection_reason"))


def ondemand_spans(books: SpanBooks, hosts: pl.DataFrame, total: pl.DataFrame, reservable: pl.DataFrame,
                   occupied: pl.DataFrame, policy: Policy, *, since: dt.datetime | None,
                   host_names: Sequence[str]) -> pl.DataFrame:
    """The ondemand level: its evidence painted by the site's priority, clipped into total, and
    the time the host was reservable removed (clipped/rejected ``reservable_pool``)."""
    parts = [absence_windows(hosts, host_names, since, snapshot_time=books.snapshot_time),
             instance_windows(occupied), host_levels.rule_rows(policy, LEVEL_ONDEMAND, host_names)]
    windows = pl.concat([p for p in parts if p is not None], how="diagonal_relaxed")
    detail = pl.struct("hypervisor_hostname", pl.col("start").cast(pl.String)).struct.json_encode()
    settled = host_levels.settled_rows(books, windows, policy, level=LEVEL_ONDEMAND, detail=detail)
    painted = host_levels.painted(books, settled, policy.priority[LEVEL_ONDEMAND], merge=True)
    inside = books.clipped_into(painted, total, by=HOST_KEY)
    return books.clipped_into(inside, reservable, by=HOST_KEY, outside=True, reason="reservable_pool",
                              clipped="reservable_pool")


def node_hours_summary(by_pool: pl.DataFrame, unknown_by_year: pl.DataFrame, *, step: dt.timedelta) -> dict:
    """Node-hours per pool in the window, and per year those of the unknown pool (host-hours no
    evidence decides: docs/semantics.md, "Pools"), from exact (fixed-point) sums of node leaf
    values: ``pool, value`` and, of the unknown pool, ``year, value`` (several rows of a pool or
    year are added up)."""
    hours = exact_sum(pl.col("value")).cast(pl.Float64) * (step.total_seconds() / 3600.0)
    pools_h = by_pool.group_by(pl.col("pool").cast(pl.String)).agg(hours.alias("h"))
    years_h = unknown_by_year.group_by(pl.col("year").cast(pl.String)).agg(hours.alias("h"))
    return {"node_hours": {pool: round(h, 6) for pool, h in sorted(pools_h.rows())},
            "unknown_node_hours_by_year": {year: round(h, 6) for year, h in sorted(years_h.rows()) if h}}
