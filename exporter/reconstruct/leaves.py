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

from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np
import polars as pl

from exporter.errors import TimelineError
from exporter.columns import (
    BOOKING_MAINTENANCE,
    BOOKING_ONDEMAND as ONDEMAND,
    BOOKING_RESERVATION as RESERVATION,
    LEVEL_COMMITTED as COMMITTED,
    LEVEL_MAINTENANCE as MAINTENANCE,
    LEVEL_OCCUPIED as OCCUPIED,
    LEVEL_ONDEMAND as ONDEMAND_POOL,
    LEVEL_RESERVABLE as RESERVABLE,
    LEVEL_STOPPED as STOPPED,
    LEVEL_TOTAL as TOTAL,
    POOL_ONDEMAND,
    POOL_RESERVABLE,
    POOL_UNKNOWN,
    TIMELINE_RESOURCES,
    TIMELINE_SCHEMA,
)

Term = tuple[int, str, "str | None"]

LEAF_TABLE: tuple[tuple[str, str, tuple[Term, ...]], ...] = (
    (POOL_RESERVABLE, "available", ((+1, RESERVABLE, None), (-1, COMMITTED, None), (-1, MAINTENANCE, None))),
    (POOL_RESERVABLE, "maintenance", ((+1, MAINTENANCE, None),)),
    (POOL_RESERVABLE, "idle", ((+1, COMMITTED, None), (-1, OCCUPIED, RESERVATION))),
    (POOL_RESERVABLE, "active", ((+1, OCCUPIED, RESERVATION), (-1, STOPPED, RESERVATION))),
    (POOL_RESERVABLE, "stopped", ((+1, STOPPED, RESERVATION),)),
    (POOL_ONDEMAND, "available", ((+1, ONDEMAND_POOL, None), (-1, OCCUPIED, ONDEMAND))),
    (POOL_ONDEMAND, "active", ((+1, OCCUPIED, ONDEMAND), (-1, STOPPED, ONDEMAND))),
    (POOL_ONDEMAND, "stopped", ((+1, STOPPED, ONDEMAND),)),
    # Neither pool evidenced. An instance on a host is itself pool evidence (reserved -> its
    # reservation's host was reservable, on-demand -> ondemand), so this pool only has capacity.
    (POOL_UNKNOWN, "available", ((+1, TOTAL, None), (-1, RESERVABLE, None), (-1, ONDEMAND_POOL, None))),
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


# Leaf frames: level-series columns -> the mutually exclusive (pool, state) leaves, long format.
#
# Input is a *wide* frame: index columns + one ``<series>|<resource>`` column per level-series
# (SERIES) and timeline resource. Each wide row becomes one row per
# (pool, state, resource) leaf (LEAF_TABLE), in the timeline's sort order.
# The timeline's label columns repeat with a fixed period, so its parts share slices of one
# label pattern instead of copying labels per row.

RESOURCES = tuple(TIMELINE_RESOURCES)
SERIES_NAMES = tuple(series_name(level, booking) for level, booking in SERIES)
# (pool, state, resource) in the timeline's sort order
_LEAF_ROWS = tuple(sorted((pool, state, res) for pool, state in LEAVES for res in RESOURCES))
_LEAF_LABELS = ("pool", "state", "resource")


def _leaf_labels(leaf: pl.Series) -> list[pl.Series]:
    """pool, state, resource (timeline dtypes) of the leaf rows indexed by ``leaf``."""
    return [
        pl.Series(name, [leaf_row[i] for leaf_row in _LEAF_ROWS], dtype=TIMELINE_SCHEMA[name]).gather(leaf)
        for i, name in enumerate(_LEAF_LABELS)
    ]


def wide_by_series(frame: pl.DataFrame, index: Sequence[str]) -> pl.DataFrame:
    """One column ``<series>|<resource>`` per level-series and resource, one row per index.

    ``frame`` must hold every series for every index value, in the same index order per series.
    """
    first = frame.filter(pl.col("series") == SERIES_NAMES[0]).select(index)
    columns = [
        frame.filter(pl.col("series") == name).select(
            pl.col(r).alias(f"{name}|{r}") for r in RESOURCES
        )
        for name in SERIES_NAMES
    ]
    return pl.concat([first, *columns], how="horizontal")


def _leaf_value(pool: str, state: str, resource: str) -> pl.Expr:
    terms = leaf_weights()[(pool, state)]
    return pl.sum_horizontal(
        sign * pl.col(f"{series_name(*s)}|{resource}") for s, sign in terms.items()
    )


def leaf_column(pool: str, state: str, resource: str) -> str:
    """Name of a leaf's column in :func:`leaf_columns`."""
    return f"{pool}|{state}|{resource}"


LEAF_COLUMNS = tuple(leaf_column(*leaf) for leaf in _LEAF_ROWS)  # in the timeline's (pool, state, resource) order


def leaf_columns(wide: pl.DataFrame) -> pl.DataFrame:
    """One column per (pool, state, resource) leaf (LEAF_COLUMNS, in the timeline's order), one
    row per wide row: the values the long timeline holds, before they are interleaved."""
    return wide.select(_leaf_value(*leaf).alias(leaf_column(*leaf)) for leaf in _LEAF_ROWS)


def _long_values(leaves: pl.DataFrame) -> pl.Series:
    """``value`` of every long row of the leaf columns: row r's leaf j at position r × m + j."""
    # One fixed-size array per wide row, flattened: a row-major interleave in one pass.
    return leaves.select(pl.concat_arr(pl.all())).to_series().reshape((-1,)).alias("value")


def long_leaves(wide: pl.DataFrame, index: Sequence[str]) -> pl.DataFrame:
    """Leaves in long format: each wide row becomes one row per (pool, state, resource)."""
    if wide.height == 0:
        labels = {name: TIMELINE_SCHEMA[name] for name in _LEAF_LABELS}
        return pl.DataFrame(schema={**wide.select(index).schema, **labels, "value": pl.Float64})
    m = len(_LEAF_ROWS)
    position = pl.int_range(0, wide.height * m, dtype=pl.get_index_type(), eager=True)
    keys = wide.select(pl.col(c).gather(position // m) for c in index)
    return pl.concat([keys, pl.DataFrame(_leaf_labels(position % m)), _long_values(leaf_columns(wide)).to_frame()],
                     how="horizontal")


def _leaf_label_pattern(site: str, node_types: pl.Series, rows: int) -> pl.DataFrame:
    """Label columns of ``rows`` wide rows cycling through ``node_types``, × every leaf row:
    ``site, node_type, pool, state, resource`` in long-timeline order."""
    m = len(_LEAF_ROWS)
    position = pl.int_range(0, rows * m, dtype=pl.get_index_type(), eager=True)
    leaf = position % m
    return pl.DataFrame(
        [
            pl.Series("site", [site], dtype=TIMELINE_SCHEMA["site"]).gather(position * 0),
            node_types.cast(TIMELINE_SCHEMA["node_type"]).gather((position // m) % node_types.len()).alias("node_type"),
            *_leaf_labels(leaf),
        ]
    )


def _site_long_leaves(site: str, node_types: pl.Series, times: pl.Series, leaves: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """Long timeline parts of ONE site: its node types (sorted), the grid times and its leaf
    columns (:func:`leaf_columns`) with one block of ``times.len()`` rows per node type.

    The label columns repeat with a fixed period, so all parts share slices of one label
    pattern; only timestamp and value are made per part, value by interleaving the part's
    cells of every (node type, leaf) block (so a consumer that takes one part at a time never
    holds them all).
    """
    k, m, n = node_types.len(), len(_LEAF_ROWS), times.len()
    # one numpy view per (node type, leaf) block, in long row order (no copy: one chunk per group)
    columns = [column.to_numpy() for block in group_blocks(leaves, k, n) for column in block.get_columns()]
    cells = max(1, (1 << 14) // k)  # grid times per part
    pattern = _leaf_label_pattern(site, node_types, min(cells, n) * k)
    row_of = pl.int_range(0, min(cells, n) * k * m, dtype=pl.get_index_type(), eager=True) // (k * m)
    by_column, by_row = np.empty((k * m, min(cells, n))), np.empty((min(cells, n), k * m))  # reused per part
    for at in range(0, n, cells):
        count = min(cells, n - at)
        labels = pattern.head(count * k * m)  # zero-copy slices
        yield pl.DataFrame([
            labels["site"], times.slice(at, count).gather(row_of.head(count * k * m)).alias("timestamp"),
            labels["node_type"], labels["pool"], labels["state"], labels["resource"],
            _interleaved(columns, at, count, by_column[:, :count], by_row[:count]),
        ])


def _interleaved(columns: list[np.ndarray], at: int, count: int, by_column: np.ndarray, by_row: np.ndarray) -> pl.Series:
    """``value`` of a long part: cells ``at`` .. ``at + count`` of ``columns``, row by row
    (:func:`_long_values` of their slices; Float64 without nulls, which numpy would read as NaN),
    through two buffers the caller reuses (columns × count and count × columns): numpy's
    transposing copy takes a third of ``concat_arr``'s CPU (measured 0.12-0.20 vs 0.50-0.61 s for
    the 500 x 10 timeline)."""
    for row, column in zip(by_column, columns):
        row[:] = column[at : at + count]
    np.copyto(by_row, by_column.T)
    flat = by_row.reshape(-1)
    # polars wraps numpy memory as it is: two halves joined are copied into polars' own memory,
    # so the buffers can be reused, and no part lives in the writer thread's malloc heap (which
    # keeps what is freed: +45 MB in the lens, session 8)
    half = len(flat) // 2
    if not half:  # one value: nothing to join
        return pl.Series("value", flat.tolist(), dtype=pl.Float64)
    return pl.concat([pl.Series("value", flat[:half]), pl.Series("value", flat[half:])], rechunk=True)


def group_blocks(leaves: pl.DataFrame, groups: int, n: int) -> list[pl.DataFrame]:
    """The rows of each of ``groups`` groups of a grid's ``leaves`` (blocks of ``n`` rows, in
    order), as zero-copy slices; none when there are no grid times."""
    return [leaves.slice(group * n, n) for group in range(groups)] if n else []


def long_timeline_parts(groups: pl.DataFrame, times: pl.Series, leaves: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """The long timeline (TIMELINE_SCHEMA) of a grid (exporter.reconstruct.timeline.TimelineGrid:
    ``groups`` site, node_type sorted; ``times``; ``leaves``, one block of ``times.len()`` rows per
    group), sorted by site, timestamp, node_type, in consecutive parts of at most about 740k rows:
    ``site, timestamp, node_type, pool, state, resource, value``. An empty grid gives one empty part."""
    if groups.height == 0 or times.len() == 0:
        index = groups.select("site", pl.lit(None, dtype=times.dtype).alias("timestamp"), "node_type").clear()
        yield long_leaves(index, ["site", "timestamp", "node_type"]).cast(TIMELINE_SCHEMA)
        return
    n = times.len()
    sites = groups.select(pl.col("site").rle()).unnest("site")  # groups are sorted by site first
    for at, size in zip((sites["len"].cum_sum() - sites["len"]).to_list(), sites["len"].to_list()):
        yield from _site_long_leaves(groups["site"][at], groups["node_type"].slice(at, size), times,
                                     leaves.slice(at * n, size * n))


def long_timeline(groups: pl.DataFrame, times: pl.Series, leaves: pl.DataFrame) -> pl.DataFrame:
    """:func:`long_timeline_parts` as one frame."""
    return pl.concat(long_timeline_parts(groups, times, leaves), how="vertical", rechunk=False)
