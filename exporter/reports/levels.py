"""The levels the reports count, as sets of timeline leaves (pool, state) — written once here and
once in docs/reports.md. The leaves are mutually exclusive, so each level's hours are a plain sum.

- total: every leaf (all capacity that existed);
- reservable: pool reservable (enrolled in Blazar), whatever its state;
- committed: reservable and held by a user lease (idle, active or stopped);
- maintenance: reservable and held by a maintenance lease;
- occupied: an instance holds the host (active or stopped), in any pool;
- active / stopped: the instance is running / stopped, in any pool;
- idle: committed but no instance (the committed - occupied of the reservable pool);
- available: nobody holds it (any pool).
Each pool other than reservable (ondemand, and unknown where pool membership has no evidence)
is also reported on its own, as ``pool_<name>``: whatever pools the timeline has.
"""

from __future__ import annotations

import polars as pl

RESERVABLE = "reservable"
_POOL = pl.col("pool").cast(pl.String)
_STATE = pl.col("state").cast(pl.String)

LEVELS: dict[str, pl.Expr] = {
    "total": pl.lit(True),
    "reservable": _POOL == RESERVABLE,
    "committed": (_POOL == RESERVABLE) & _STATE.is_in(["idle", "active", "stopped"]),
    "maintenance": (_POOL == RESERVABLE) & (_STATE == "maintenance"),
    "occupied": _STATE.is_in(["active", "stopped"]),
    "active": _STATE == "active",
    "stopped": _STATE == "stopped",
    "idle": (_POOL == RESERVABLE) & (_STATE == "idle"),
    "available": _STATE == "available",
}


def pool_levels(pools: list[str]) -> dict[str, pl.Expr]:
    """``pool_<name>`` for every pool except reservable (already a level), in name order."""
    return {f"pool_{pool}": _POOL == pool for pool in sorted(set(pools) - {RESERVABLE})}


def all_levels(timeline: pl.DataFrame | pl.LazyFrame) -> dict[str, pl.Expr]:
    """LEVELS plus the pools of ``timeline`` (its pool dtype lists them when it is an Enum)."""
    dtype = timeline.collect_schema()["pool"]
    pools = list(dtype.categories) if isinstance(dtype, pl.Enum) else (
        timeline.lazy().select(pl.col("pool").cast(pl.String).unique()).collect().to_series().drop_nulls().to_list())
    return {**LEVELS, **pool_levels(pools)}
