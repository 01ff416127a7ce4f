"""Held counters: a published counter never decreases and never vanishes.

A correction to the past (a row deleted or edited in the database) can lower a recomputed
integral, and a series disappears from a recomputation when every row behind it is gone.
Publishing either would look like a counter reset to Prometheus, so per series the published
value is max(previously published, computed) and a series only the previous publish has keeps
its value. The live node counters (exporter.live.render) and device counters
(exporter.reconstruct.device_family) both publish through :func:`held_counters`.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def held_counters(previous: pl.DataFrame | None, computed: pl.DataFrame,
                  keys: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """Per series of ``keys``: ``value`` = max(previous, computed); a series missing from
    ``computed`` keeps its previous value. Returns ``keys`` + ``value`` sorted by ``keys``, and
    how many series are being held (lower than before, or missing from ``computed``)."""
    keys = list(keys)
    computed = computed.select(*keys, pl.col("value").cast(pl.Float64))
    if previous is None or previous.is_empty():
        return computed.sort(keys), 0
    before = previous.select(*keys, pl.col("value").cast(pl.Float64).alias("before"))
    joined = computed.join(before, on=keys, how="full", coalesce=True)
    lower = pl.col("before").is_not_null() & (pl.col("value").is_null() | (pl.col("value") < pl.col("before")))
    held = joined.select(*keys, pl.max_horizontal("value", "before").alias("value"), lower.alias("held")).sort(keys)
    return held.select(*keys, "value"), int(held.get_column("held").sum())
