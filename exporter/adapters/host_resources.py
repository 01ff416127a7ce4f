"""What a span holds of its host: node_type, GPUs, inventory and the per-level resource rule.

Host identity is the hypervisor_hostname. A span's inventory comes from the nova compute_nodes
row covering its start when it reports non-zero vcpus, else from the covering Blazar
computehosts row (ironic rows report 0 since Stein), else from the nearest later then earlier
non-zero row of the same host, else 0. node_type and GPUs come from Blazar capabilities
(``blazar_hosts.host_attributes``); a host Blazar never knew is ``node_type="unknown"``, 0 GPUs.

Resource rule: on ironic hosts a span holds the whole host (nodes = 1, host inventory, host
GPUs). On KVM hosts an instance (or a reservation slot) holds its own vcpus/memory/disk and
nodes = vcpus / host vcpus (0 when the host's vcpus are unknown) and no GPUs.
"""

from __future__ import annotations

import polars as pl

from exporter.adapters import common
from exporter.columns import UNKNOWN_NODE_TYPE

INVENTORY = ("vcpus", "memory_mb", "disk_gb")
IRONIC = "ironic"


def host_kinds(host_windows: pl.LazyFrame) -> pl.LazyFrame:
    """hypervisor_hostname, is_kvm: a host is KVM when its newest known hypervisor_type is not ironic
    (rows starting at one moment: the last in ``common.ROW_ID_ORDER``)."""
    known = host_windows.filter(pl.col("hypervisor_type").is_not_null() & pl.col("hypervisor_hostname").is_not_null())
    return (
        known.sort("start", *common.ROW_ID_ORDER, "hypervisor_type", nulls_last=False)
        .group_by("hypervisor_hostname")
        .agg(pl.col("hypervisor_type").last())
        .select("hypervisor_hostname", (pl.col("hypervisor_type").str.to_lowercase() != IRONIC).alias("is_kvm"))
    )


SITE_KINDS = ("kvm", "ironic", "mixed", "unknown")


def site_hypervisor(kinds: pl.DataFrame, hostnames: list[str]) -> dict:
    """Hosts per kind (newest known hypervisor_type, as ``host_kinds``) and the site's kind.

    The site is ``kvm`` when every host of known type is KVM, ``ironic`` when every one is
    ironic, ``mixed`` when both occur, ``unknown`` when no host's type is known.
    """
    is_kvm = dict(zip(kinds.get_column("hypervisor_hostname").to_list(), kinds.get_column("is_kvm").to_list()))
    kvm = sum(1 for name in hostnames if is_kvm.get(name) is True)
    ironic = sum(1 for name in hostnames if is_kvm.get(name) is False)
    kind = ("mixed" if kvm and ironic else "kvm" if kvm else "ironic" if ironic else "unknown")
    return {"site": kind, "kvm_hosts": kvm, "ironic_hosts": ironic, "unknown_hosts": len(hostnames) - kvm - ironic}


def _stretches(candidates: pl.LazyFrame, prefix: str) -> pl.LazyFrame:
    """hypervisor_hostname, ``{prefix}_from`` and, per inventory column, ``{prefix}_covering_*`` and
    ``{prefix}_backward_*``: per host, the stretches between the candidates' starts and ends, each
    with the inventory of the latest-starting row covering it (null where none does) and of the
    latest-starting row begun by then.

    An as-of join on these stretches finds the row covering an instant even when a later,
    already ended row started after it (A [Jan, open), B [Mar, Apr): May is A's).
    """
    rows = candidates.select("hypervisor_hostname", "start", "end", *INVENTORY)
    points = pl.concat([rows.select("hypervisor_hostname", pl.col("start").alias("point")),
                        rows.select("hypervisor_hostname", pl.col("end").alias("point")).drop_nulls()]).unique()
    covers = pl.col("end").is_null() | (pl.col("end") > pl.col("point"))
    # Every point is some row's start or end, so some row has begun by it.
    return (
        points.join(rows, on="hypervisor_hostname").filter(pl.col("start") <= pl.col("point"))
        .sort("hypervisor_hostname", "point", "start")
        .group_by("hypervisor_hostname", "point", maintain_order=True)
        .agg(*(pl.col(c).filter(covers).last().alias(f"{prefix}_covering_{c}") for c in INVENTORY),
             *(pl.col(c).last().alias(f"{prefix}_backward_{c}") for c in INVENTORY))
        .rename({"point": f"{prefix}_from"})
        .sort(f"{prefix}_from")
    )


def inventory_at_start(spans: pl.LazyFrame, host_windows: pl.LazyFrame) -> pl.LazyFrame:
    """``spans`` + host_vcpus, host_memory_mb, host_disk_gb: the host's inventory for each span.

    ``host_windows``: usable host evidence rows (source_table, hypervisor_hostname, start, end,
    vcpus, memory_mb, disk_gb); only rows with vcpus > 0 are candidates. Preference: the nova
    row covering the span's start (the latest-starting one when several do), the Blazar row
    covering it, then the first nova / Blazar row starting later (a zero-inventory ironic host
    enrolled in Blazar a little after Nova), then the last earlier nova / Blazar row; none -> 0.
    Rows of one source and host starting at one moment: the first in ``common.ROW_ID_ORDER``
    stands for them (``common.first_row_each``).
    ``spans`` is read twice and the results are put side by side, so its row order must be
    stable (an eager frame, or a plan without order-changing steps).
    """
    # Only the lookup keys go through the sort and the as-of joins; the result is row-aligned
    # with ``spans`` again (sorted back by ``_span``) and attached side by side.
    result = spans.select("hypervisor_hostname", "start").with_row_index("_span").sort("start")
    # One row per (source, host, start): the as-of joins would pick among tied starts by row order.
    # Collected once (host rows are few): each source's three lookups read it four times.
    counted = host_windows.filter(pl.col("vcpus") > 0).with_columns(
        pl.col("source_table").str.split(".").list.first().alias("_source")).collect()
    counted = common.first_row_each(counted, ("_source", "hypervisor_hostname", "start")).lazy()
    for source in ("nova", "blazar"):
        candidates = counted.filter(pl.col("_source") == source)
        later = candidates.select("hypervisor_hostname", pl.col("start").alias(f"_{source}_forward_from"),
                                  *(pl.col(c).alias(f"_{source}_forward_{c}") for c in INVENTORY))
        for strategy, lookup, key in (("backward", _stretches(candidates, f"_{source}"), f"_{source}_from"),
                                      ("forward", later.sort(f"_{source}_forward_from"), f"_{source}_forward_from")):
            result = result.join_asof(lookup, left_on="start", right_on=key, by="hypervisor_hostname",
                                      strategy=strategy, check_sortedness=False)
    # A candidate's vcpus are > 0, so a null one means no row covers.
    covering = {source: pl.col(f"_{source}_covering_vcpus").is_not_null() for source in ("nova", "blazar")}
    choices = [
        pl.when(covering["nova"]).then(pl.col(f"_nova_covering_{column}"))
        .when(covering["blazar"]).then(pl.col(f"_blazar_covering_{column}"))
        .otherwise(pl.coalesce(f"_nova_forward_{column}", f"_blazar_forward_{column}",
                               f"_nova_backward_{column}", f"_blazar_backward_{column}", pl.lit(0.0)))
        .alias(f"host_{column}")
        for column in INVENTORY
    ]
    inventory = result.select("_span", *choices).sort("_span").drop("_span")
    return pl.concat([spans, inventory], how="horizontal")


def with_host_resources(spans: pl.LazyFrame, *, attributes: pl.LazyFrame, kinds: pl.LazyFrame,
                        host_windows: pl.LazyFrame, whole_host: bool) -> pl.LazyFrame:
    """``spans`` + node_type, nodes, vcpus, memory_mb, disk_gb, gpus by the resource rule.

    ``whole_host=True`` (total, reservable) always takes the whole host. Otherwise KVM spans keep
    their own ``own_vcpus``/``own_memory_mb``/``own_disk_gb`` columns (null = whole host).
    """
    enriched = (
        inventory_at_start(spans, host_windows)
        .join(attributes, on="hypervisor_hostname", how="left")
        .join(kinds, on="hypervisor_hostname", how="left")
        .with_columns(pl.col("node_type").fill_null(UNKNOWN_NODE_TYPE), pl.col("gpus").fill_null(0.0),
                      pl.col("is_kvm").fill_null(False))
    )
    if whole_host:
        slice_ = pl.lit(False)
    else:
        slice_ = pl.col("is_kvm") & pl.col("own_vcpus").is_not_null()
    host_vcpus = pl.col("host_vcpus")
    return enriched.with_columns(
        pl.when(slice_).then(
            pl.when(host_vcpus > 0).then(pl.col("own_vcpus") / host_vcpus).otherwise(0.0)
        ).otherwise(1.0).alias("nodes"),
        *(pl.when(slice_).then(pl.col(f"own_{c}")).otherwise(pl.col(f"host_{c}")).alias(c) for c in INVENTORY),
        pl.when(slice_).then(0.0).otherwise(pl.col("gpus")).alias("gpus"),
    )
