"""Inference, the lowest-priority source: what surviving evidence implies where Blazar forgot.

Upstream Blazar has no soft-delete columns: it hard-deletes an allocation when its lease ends
(and a lease, with everything under it, when it is deleted; a host when it is removed). The
instances Nova keeps still name their reservation (request spec), so:

- a reserved instance on host H during [a, b) implies H was committed to that reservation
  during [a, b) — or, when the reservation and lease rows survive, during the lease window;
  maintenance instead of committed when the lease's (else the instance's) project is a
  maintenance project;
- a host committed to a reservation was reservable then.

These windows carry ``source_table = inference`` and are painted under every database source
(exporter.priority), so they fill only where Blazar is silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from exporter.engine import intervals
from exporter.adapters import common
from exporter.columns import BOOKING_RESERVATION, LEVEL_COMMITTED, LEVEL_MAINTENANCE, LEVEL_RESERVABLE

SOURCE = "inference"


def commitments(instances: pl.DataFrame, frames: Mapping[str, pl.LazyFrame], *,
                maintenance_projects: Sequence[str]) -> pl.DataFrame:
    """Inferred committed/maintenance windows, one per (reservation, host, era), as adapter windows.

    ``instances``: the instance windows (nova_instances.instance_windows, collected).
    """
    reserved = reserved_instances(instances)
    leases = _lease_windows(frames)
    runs = reserved.lazy().select("reservation_id", "hypervisor_hostname", "start", "end")
    # Where the lease survives, its window is the commitment (instances outliving it by Blazar's
    # kill delay do not extend it); where it is gone, the instances' runs are all there is.
    known = runs.select("reservation_id", "hypervisor_hostname").unique().join(
        leases.select("reservation_id", "start", "end"), on="reservation_id")
    windows = pl.concat([runs.join(leases, on="reservation_id", how="anti"), known], how="vertical_relaxed")
    key = ["reservation_id", "hypervisor_hostname"]
    eras = intervals.union_intervals(windows, by=key)  # an open window stays open (null end)
    owner = reserved.lazy().group_by(key).agg(
        # the earliest instance's (docs/semantics.md): ``instances`` arrive in a run-varying row order
        pl.col("project_id").sort_by("start", *common.ROW_ID_ORDER, nulls_last=True).first()
        .alias("instance_project"),
        *(pl.col(c).max().alias(f"slot_{c}") for c in ("vcpus", "memory_mb", "disk_gb")))
    joined = (eras.join(owner, on=key, how="left")
              .join(leases.select("reservation_id", "lease_id", "project_id"), on="reservation_id", how="left"))
    project = pl.coalesce("project_id", "instance_project")
    return joined.sort(*key, "start").select(
        pl.lit(SOURCE).alias("source_table"),
        pl.format("{}@{}@{}", "reservation_id", "hypervisor_hostname", pl.col("start").dt.strftime("%Y%m%dT%H%M%S"))
        .alias("source_id"),
        pl.format("{}@{}", "reservation_id", "hypervisor_hostname").alias("entity_id"),
        "hypervisor_hostname", project.alias("project_id"), "lease_id", "reservation_id", "start", "end",
        pl.when(project.is_in(list(maintenance_projects))).then(pl.lit(LEVEL_MAINTENANCE))
        .otherwise(pl.lit(LEVEL_COMMITTED)).alias("level"),
        pl.lit(None, dtype=pl.String).alias("rejection_reason"),
        "slot_vcpus", "slot_memory_mb", "slot_disk_gb").collect()


def reserved_instances(instances: pl.DataFrame) -> pl.DataFrame:
    """The instances inference reads: usable rows booked against a reservation. The knowledge
    time of an inferred span (reconstruct.knowledge) is dated by the same rows."""
    return instances.filter(pl.col("rejection_reason").is_null() & (pl.col("booking") == BOOKING_RESERVATION))


def reservable_hosts(inferred: pl.DataFrame) -> pl.DataFrame:
    """A host committed (by inference) was reservable: the union of its inferred windows."""
    eras = intervals.union_intervals(inferred.lazy().select("hypervisor_hostname", "start", "end"),
                                     by=["hypervisor_hostname"]).collect()
    return eras.sort("hypervisor_hostname", "start").select(
        pl.lit(SOURCE).alias("source_table"),
        pl.format("{}@{}", "hypervisor_hostname", pl.col("start").dt.strftime("%Y%m%dT%H%M%S")).alias("source_id"),
        pl.col("hypervisor_hostname").alias("entity_id"), "hypervisor_hostname", "start", "end",
        pl.lit(LEVEL_RESERVABLE).alias("level"), pl.lit(None, dtype=pl.String).alias("rejection_reason"))


def _lease_windows(frames: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """reservation_id, lease_id, project_id, start, end of every surviving reservation's lease."""
    reservations = common.table_rows(frames, "blazar.reservations", {"id": common.ID, "lease_id": common.ID})
    leases = common.table_rows(frames, "blazar.leases", {
        "id": common.ID, "project_id": common.TEXT, "start_date": common.WHEN, "end_date": common.WHEN,
        "deleted_at": common.WHEN})
    return (reservations.unique("id", keep="first").rename({"id": "reservation_id"})
            .join(leases.unique("id", keep="first").rename({"id": "lease_id"}), on="lease_id", how="inner")
            .filter(pl.col("start_date").is_not_null() & (pl.col("end_date") > pl.col("start_date")))
            .select("reservation_id", "lease_id", "project_id", pl.col("start_date").alias("start"),
                    pl.min_horizontal("end_date", "deleted_at").alias("end")))
