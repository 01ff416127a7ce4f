"""Maintenance masks: time an enrolled host was taken out of reservation (Blazar's
``computehosts.reservable = 0``), docs/semantics.md "Maintenance masks".

Maintenance is an overlay, not a consumer: a mask takes the host's time out of the reservable
pool's ``available`` part and into its ``maintenance`` leaf (the spans are level maintenance,
with no lease). It never takes time a lease holds: mask time under a commitment (committed or a
maintenance lease) stays the lease's, and is clipped with reason ``under_commitment``; so no leaf
goes negative and the leaves stay a partition of total. An unreservable CHI@Edge device's
maintenance keeps the same rule (``outside_commitments``, used by device_levels).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from exporter.adapters import blazar_flag
from exporter.columns import LEVEL_MAINTENANCE
from exporter.reconstruct import host_levels
from exporter.reconstruct.books import SpanBooks
from exporter.reconstruct.policy import Policy

HOST_KEY = ["hypervisor_hostname"]
# The audit history first (it knows when the flag went down and up), the row's current value
# where the history is silent (before the triggers existed).
ORDER = (blazar_flag.AUDIT, blazar_flag.HOSTS)


def mask_spans(books: SpanBooks, frames: Mapping[str, pl.LazyFrame], reservable: pl.DataFrame,
               commitments: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Flag-down windows settled, painted (audit over current value, merged per host), clipped
    into reservable, minus the time a lease held the host (``under_commitment``)."""
    windows = blazar_flag.flag_windows(frames).collect()
    settled = host_levels.settled_rows(books, windows, policy, level=LEVEL_MAINTENANCE,
                                       detail=blazar_flag.mask_reject_detail())
    painted = host_levels.painted(books, settled, ORDER, merge=True)
    inside = books.clipped_into(painted, reservable, by=HOST_KEY)
    return outside_commitments(books, inside, commitments, by=HOST_KEY)


def outside_commitments(books: SpanBooks, masks: pl.DataFrame, commitments: pl.DataFrame,
                        by: list[str]) -> pl.DataFrame:
    """``masks`` minus the time a lease (committed or maintenance span of the same ``by`` key)
    held the host or device: that time stays the lease's, clipped as ``under_commitment``, so the
    reservable pool's available leaf never goes negative. Hosts' masks and unreservable devices."""
    held = commitments.select(*by, "start", "end")
    return books.clipped_into(masks, held, by=by, outside=True, reason="under_commitment",
                              clipped="under_commitment")
