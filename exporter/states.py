"""The leaf-state rule, as data: how exported (pool, state) leaves are built from span levels.

This table is the one place the rule lives in code (docs/timeline.md states it in words).
Each row is ``(pool, state, terms)`` with terms ``(sign, level, booking)``: the leaf equals
Σ sign × level-series. A level-series is the sum of spans of that level whose booking equals
``booking`` (``booking=None``: all spans of the level, whatever their booking).

Per (site, node_type, resource) the leaves are mutually exclusive and sum to ``total``.
The table is invertible (each level-series is recovered from the leaves), which the hours
invariant uses to check the timeline against span-hours level by level.
"""

from __future__ import annotations

from fractions import Fraction

from exporter.schema import (
    BOOKING_MAINTENANCE,
    BOOKING_ONDEMAND as ONDEMAND,
    BOOKING_RESERVATION as RESERVATION,
    LEVEL_COMMITTED as COMMITTED,
    LEVEL_MAINTENANCE as MAINTENANCE,
    LEVEL_OCCUPIED as OCCUPIED,
    LEVEL_RESERVABLE as RESERVABLE,
    LEVEL_STOPPED as STOPPED,
    LEVEL_TOTAL as TOTAL,
    POOL_ONDEMAND,
    POOL_RESERVABLE,
)

Term = tuple[int, str, "str | None"]

LEAF_TABLE: tuple[tuple[str, str, tuple[Term, ...]], ...] = (
    (POOL_RESERVABLE, "available", ((+1, RESERVABLE, None), (-1, COMMITTED, None), (-1, MAINTENANCE, None))),
    (POOL_RESERVABLE, "maintenance", ((+1, MAINTENANCE, None),)),
    (POOL_RESERVABLE, "idle", ((+1, COMMITTED, None), (-1, OCCUPIED, RESERVATION))),
    (POOL_RESERVABLE, "active", ((+1, OCCUPIED, RESERVATION), (-1, STOPPED, RESERVATION))),
    (POOL_RESERVABLE, "stopped", ((+1, STOPPED, RESERVATION),)),
    (POOL_ONDEMAND, "available", ((+1, TOTAL, None), (-1, RESERVABLE, None), (-1, OCCUPIED, ONDEMAND))),
    (POOL_ONDEMAND, "active", ((+1, OCCUPIED, ONDEMAND), (-1, STOPPED, ONDEMAND))),
    (POOL_ONDEMAND, "stopped", ((+1, STOPPED, ONDEMAND),)),
)

# Level-series that feed no leaf: instances inside a maintenance lease (operators testing a
# node). Their host-time is the maintenance leaf already; exporting them as active or idle
# would count the host twice (idle = committed - occupied would go negative).
UNEXPORTED_SERIES: tuple[tuple[str, str], ...] = ((OCCUPIED, BOOKING_MAINTENANCE), (STOPPED, BOOKING_MAINTENANCE))

Series = tuple[str, "str | None"]  # (level, booking or None)
Leaf = tuple[str, str]  # (pool, state)

LEAVES: tuple[Leaf, ...] = tuple((pool, state) for pool, state, _ in LEAF_TABLE)
SERIES: tuple[Series, ...] = tuple(
    dict.fromkeys((level, booking) for _, _, terms in LEAF_TABLE for _, level, booking in terms)
)


def series_name(level: str, booking: str | None) -> str:
    """Column-safe name of a level-series, e.g. ``total`` or ``occupied.reservation``."""
    return level if booking is None else f"{level}.{booking}"


def leaf_weights() -> dict[Leaf, dict[Series, int]]:
    """leaf -> {series: sign}: the leaf table as a sparse matrix."""
    return {
        (pool, state): {(level, booking): sign for sign, level, booking in terms}
        for pool, state, terms in LEAF_TABLE
    }


def series_weights() -> dict[Series, dict[Leaf, Fraction]]:
    """series -> {leaf: weight}: the inverse of the leaf table (series = Σ weight × leaf)."""
    matrix = leaf_weights()
    rows = [[Fraction(matrix[leaf].get(s, 0)) for s in SERIES] for leaf in LEAVES]
    inverse = _inverse(rows)
    return {
        s: {leaf: inverse[i][j] for j, leaf in enumerate(LEAVES) if inverse[i][j]}
        for i, s in enumerate(SERIES)
    }


def _inverse(rows: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact inverse of a small square matrix (Gauss-Jordan over fractions)."""
    size = len(rows)
    if any(len(r) != size for r in rows):
        raise ValueError("the leaf table must have as many leaves as level-series")
    work = [r[:] + [Fraction(int(i == j)) for j in range(size)] for i, r in enumerate(rows)]
    for col in range(size):
        pivot = next((r for r in range(col, size) if work[r][col] != 0), None)
        if pivot is None:
            raise ValueError("the leaf table is not invertible")
        work[col], work[pivot] = work[pivot], work[col]
        scale = work[col][col]
        work[col] = [x / scale for x in work[col]]
        for r in range(size):
            if r != col and work[r][col] != 0:
                factor = work[r][col]
                work[r] = [a - factor * b for a, b in zip(work[r], work[col])]
    return [r[size:] for r in work]
