"""Validation of a timeline before export: shape, types, vocabularies, a dense regular grid.

:func:`checked_timeline` turns a TIMELINE_SCHEMA frame into compact numeric samples (series
rank, family, epoch seconds, value) or raises TimelineError saying what is wrong; the writers
(``openmetrics``, ``victoria``) start from its result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from exporter.columns import POOLS, STATES, TIME, TIMELINE_KEYS, TIMELINE_SCHEMA
from exporter.engine.chunks import index_dtype, row_blocks
from exporter.errors import TimelineError
from exporter.metrics import FAMILIES, FAMILY_BY_RESOURCE

SERIES_KEYS = TIMELINE_KEYS  # site, node_type, pool, state, resource
_US = 1_000_000


@dataclass(frozen=True)
class CheckedTimeline:
    """A timeline that passed :func:`checked_timeline`."""

    samples: pl.DataFrame  # rank (UInt32), family (UInt8, gauge index), t (Int64 epoch s), value; by rank, t
    keys: pl.DataFrame  # SERIES_KEYS + rank: one row per series, rank = output order
    step_seconds: int
    starts: dict[str, dt.datetime]  # site -> first grid time (the counters' origin)
    ends: dict[str, dt.datetime]  # site -> last grid time + step (end of the covered range)


@dataclass(frozen=True)
class Prechecked:
    """A timeline that passed every check of :func:`checked_timeline` but the dense one (each
    series one row per grid time): its series are known and ranked, its samples not yet placed."""

    frame: pl.DataFrame  # in TIMELINE_SCHEMA dtypes
    grid: pl.DataFrame  # per site: start, last, points
    codes: pl.Series  # each row's series code (_series_codes)
    keys: pl.DataFrame  # SERIES_KEYS + code + rank (_ranked_keys)
    step_seconds: int

    @property
    def starts(self) -> dict[str, dt.datetime]:
        return dict(zip(self.grid["site"], self.grid["start"]))

    @property
    def ends(self) -> dict[str, dt.datetime]:
        step = dt.timedelta(seconds=self.step_seconds)
        return {site: last + step for site, last in zip(self.grid["site"], self.grid["last"])}


def checked_timeline(frame: pl.DataFrame, *, step_seconds: int | None = None) -> CheckedTimeline:
    """Validate a timeline (TIMELINE_SCHEMA) and infer its step; TimelineError says what is wrong.

    Requires: exactly the TIMELINE_SCHEMA columns, no nulls, finite values, known
    resource/pool/state, whole-second timestamps at or after 1970, and per site a regular grid on
    which every series has exactly one row per grid time. ``step_seconds`` is needed only when a
    site has a single grid time. Returns the samples in compact numeric form (no strings).
    """
    return placed_timeline(prechecked_timeline(frame, step_seconds=step_seconds))


def prechecked_timeline(frame: pl.DataFrame, *, step_seconds: int | None = None) -> Prechecked:
    """Every check of :func:`checked_timeline` before the dense one, in the same order (the same
    TimelineError for the same timeline); the series ranked over the whole timeline."""
    frame = _conformed(frame)
    _check_values(frame)
    # each site's timestamps made unique within the site: a hash of one column per group, not of
    # (site, timestamp) rows (0.105 -> 0.064 s CPU on 3.16M rows, BENCHMARKS.md session 10); on the
    # streaming engine, whose unique takes no fresh memory per row: 0.042 -> 0.026 s CPU and 19.6k ->
    # 0.3k page faults before the first promtool (session 12); integers only, no float to round
    grid = (frame.lazy().group_by("site").agg(pl.col("timestamp").unique()).explode("timestamp")
            .sort("site", "timestamp")
            .with_columns(gap=pl.col("timestamp").diff().dt.total_microseconds().over("site"))
            .group_by("site").agg(start=pl.col("timestamp").min(), last=pl.col("timestamp").max(),
                                  points=pl.len(), gap_min=pl.col("gap").min(), gap_max=pl.col("gap").max())
            .with_columns(pl.col("site").cast(pl.String)).sort("site").collect(engine="streaming"))
    irregular = grid.filter(pl.col("gap_min") != pl.col("gap_max"))
    if irregular.height:
        row = irregular.row(0, named=True)
        raise TimelineError(f"timeline grid is irregular for site {row['site']!r}: spacing varies between "
                            f"{row['gap_min'] / _US:g}s and {row['gap_max'] / _US:g}s")
    steps = set(grid["gap_min"].drop_nulls().to_list())
    if len(steps) > 1:
        raise TimelineError(f"timeline sites use different steps ({', '.join(f'{s / _US:g}s' for s in sorted(steps))})")
    step_us = steps.pop() if steps else (step_seconds * _US if step_seconds else None)
    if step_us is None:
        raise TimelineError("timeline has a single timestamp per site: cannot infer its step (pass step_seconds)")
    if step_us % _US or (step_seconds and step_us != step_seconds * _US):
        raise TimelineError(f"timeline step {step_us / _US:g}s is not the expected whole number of seconds"
                            + (f" ({step_seconds}s)" if step_seconds else ""))
    # one chunk (the frame comes in the parquet file's row groups): the first window and the placing
    # then take it as numpy without a copy each (BENCHMARKS.md session 13)
    codes = _series_codes(frame).rechunk()
    return Prechecked(frame=frame, grid=grid.select("site", "start", "last", "points"), codes=codes,
                      keys=_ranked_keys(frame, codes), step_seconds=step_us // _US)


def placed_timeline(pre: Prechecked) -> CheckedTimeline:
    """The dense check of :func:`checked_timeline` and its samples in (rank, t) order."""
    samples = _placed_samples(pre.frame, pre.codes, pre.keys, pre.grid, pre.step_seconds)
    if samples is None:  # not (provably) a dense grid: the general path finds and names what is wrong
        samples = _numeric_samples(pre.frame, pre.codes, pre.keys)
        _check_dense(samples, pre.keys.drop("code"), pre.grid, pre.step_seconds)
    return CheckedTimeline(samples=samples, keys=pre.keys.drop("code"), step_seconds=pre.step_seconds,
                           starts=pre.starts, ends=pre.ends)


def _conformed(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in TIMELINE_SCHEMA dtypes; label columns may also come as text (String,
    Categorical or another Enum), checked against the fixed vocabularies before the cast."""
    if not isinstance(frame, pl.DataFrame):
        raise TimelineError(f"timeline must be a polars DataFrame, got {type(frame).__name__}")
    names = set(frame.columns)
    missing = [name for name in TIMELINE_SCHEMA if name not in names]
    extra = sorted(names - set(TIMELINE_SCHEMA))
    if missing:
        raise TimelineError(f"timeline is missing column(s): {', '.join(missing)}")
    if extra:
        raise TimelineError(f"timeline has unexpected column(s): {', '.join(extra)}")
    if frame.height == 0:
        raise TimelineError("timeline is empty (no rows)")
    for name, dtype in TIMELINE_SCHEMA.items():
        actual = frame.schema[name]
        if dtype == TIME:
            ok = isinstance(actual, pl.Datetime) and actual.time_zone is None
        elif dtype == pl.Float64():
            ok = actual.is_numeric()
        else:
            ok = actual == dtype or actual in (pl.String, pl.Categorical) or isinstance(actual, pl.Enum)
        if not ok:
            raise TimelineError(f"timeline column {name!r} has type {actual}, expected {dtype}")
    vocabularies = {"resource": tuple(FAMILY_BY_RESOURCE), "pool": POOLS, "state": STATES}
    for column, allowed in vocabularies.items():
        if frame.schema[column] == TIMELINE_SCHEMA[column]:
            continue  # the Enum dtype admits nothing else
        unknown = frame.filter(~pl.col(column).cast(pl.String).is_in(allowed))[column].cast(pl.String)
        if unknown.len():
            raise TimelineError(f"timeline column {column!r} has unknown value(s) {unknown.unique().sort().to_list()[:5]} "
                                f"(allowed: {', '.join(allowed)})")
    return frame.select(pl.col(name).cast(dtype) for name, dtype in TIMELINE_SCHEMA.items())


def _check_values(frame: pl.DataFrame) -> None:
    nulls = frame.null_count().row(0, named=True)
    with_nulls = {name: count for name, count in nulls.items() if count}
    if with_nulls:
        listed = ", ".join(f"{name} ({count})" for name, count in with_nulls.items())
        raise TimelineError(f"timeline has null values in column(s): {listed}")
    problems = frame.select(
        nonfinite=(~pl.col("value").is_finite()).sum(),
        subsecond=(pl.col("timestamp").dt.epoch("us") % _US != 0).sum(),
        before_epoch=(pl.col("timestamp").dt.epoch("us") < 0).sum(),
    ).row(0, named=True)
    if problems["nonfinite"]:
        raise TimelineError(f"timeline has {problems['nonfinite']} NaN or infinite value(s)")
    if problems["subsecond"]:
        raise TimelineError(f"timeline has {problems['subsecond']} timestamp(s) that are not whole seconds")
    if problems["before_epoch"]:
        raise TimelineError(f"timeline has {problems['before_epoch']} timestamp(s) before 1970 "
                            "(promtool silently drops them)")


def _ranked_keys(frame: pl.DataFrame, codes: pl.Series) -> pl.DataFrame:
    """One row per series, in rank order: SERIES_KEYS, ``code`` and ``rank`` (output order =
    family, node_type, pool, site, state)."""
    family_order = {family.resource: i for i, family in enumerate(FAMILIES)}
    first = codes.arg_unique()
    return (frame[first].select(pl.col(SERIES_KEYS).cast(pl.String)).with_columns(code=codes.gather(first))
            .sort(pl.col("resource").replace_strict(family_order, return_dtype=pl.UInt8),
                  "node_type", "pool", "site", "state")
            .with_columns(rank=pl.int_range(pl.len(), dtype=pl.UInt32)))


PACKED_BITS = 63  # the codes of SERIES_KEYS packed into one UInt64 while they fit


def _series_codes(frame: pl.DataFrame) -> pl.Series:
    """A UInt64 per row naming its series: packed categorical codes of SERIES_KEYS (a single
    integer column keeps unique/join cheap on tens of millions of rows). The key columns are widened
    inside the one expression, not held as five UInt64 columns first: fresh memory the first promtool
    waited for (0.046 -> 0.016 s CPU, 38k -> 7.5k page faults on 3.16M rows, BENCHMARKS.md session 12)."""
    physical = [pl.col(name).to_physical().cast(pl.UInt64) for name in SERIES_KEYS]  # Enum/Categorical codes
    largest = frame.select(pl.col(SERIES_KEYS).to_physical().max()).row(0)
    bits = [max(int(value or 0).bit_length(), 1) for value in largest]
    if sum(bits) > PACKED_BITS:  # a huge category cache: fall back to a dense rank of the tuple
        return frame.select(pl.struct(physical).rank("dense").cast(pl.UInt64)).to_series()
    code = pl.lit(0, dtype=pl.UInt64)
    for column, width in zip(physical, bits):
        code = code * (1 << width) + column
    return frame.select(code.alias("code")).to_series()


# a series' resource -> the index of its gauge in FAMILIES' gauge/counter pairs
_FAMILY_INDEX = {family.resource: 2 * i for i, family in enumerate(FAMILIES)}


def family_codes(resources: pl.Series) -> pl.Series:
    """Each series' resource -> its gauge family (UInt8, _FAMILY_INDEX)."""
    return resources.replace_strict(_FAMILY_INDEX, return_dtype=pl.UInt8)


def _numeric_samples(frame: pl.DataFrame, codes: pl.Series, keys: pl.DataFrame) -> pl.DataFrame:
    """The timeline as (rank, family, t, value) sorted by rank then t: no strings left."""
    ranks = keys.select("code", "rank", family=family_codes(keys["resource"]))
    return (pl.DataFrame({"code": codes, "t": frame["timestamp"].dt.epoch("s"), "value": frame["value"]}).lazy()
            .join(ranks.lazy(), on="code")
            .select("rank", "family", "t", "value")
            .sort(pl.col("rank").cast(pl.Int64) * (1 << 40) + pl.col("t"))  # one integer key: fast
            .collect())


LOOKUP_LIMIT = 1 << 24  # series codes below this index a lookup table (16M entries at most)


def rank_lookup(keys: pl.DataFrame) -> np.ndarray | None:
    """``rank_of_code[code]``: each series code's rank, as a table; None when the codes are too
    sparse for one (not worth the guesswork: the callers take their general path)."""
    largest = int(keys["code"].max())
    if largest >= LOOKUP_LIMIT:
        return None
    rank_of_code = np.zeros(largest + 1, dtype=np.uint32)
    rank_of_code[keys["code"].to_numpy()] = keys["rank"].to_numpy()
    return rank_of_code


def _placed_samples(frame: pl.DataFrame, codes: pl.Series, keys: pl.DataFrame, grid: pl.DataFrame,
                    step: int) -> pl.DataFrame | None:
    """The samples of :func:`_numeric_samples` without its join and sort, or None when the
    timeline is not a dense grid (duplicates, holes) or its codes are too sparse for a table.

    On a dense grid every row has one place in the output: its series' offset (series in rank
    order, each as long as its site's grid) plus its grid index. Writing each row's number at its
    place fills every place exactly once iff there are as many rows as places and no place is left
    empty (n rows onto n places, none empty: no two rows share one) - that is "one row per series
    and grid time", checked in one pass instead of a sort. The grid check before this guarantees
    each row's time is one of its site's grid times, so every place is in range."""
    rank_of_code = rank_lookup(keys)
    if rank_of_code is None:
        return None
    series = keys.join(grid.select("site", "points", start=pl.col("start").dt.epoch("s")), on="site",
                       maintain_order="left")
    points = series["points"].to_numpy().astype(np.int64)
    if int(points.sum()) != frame.height:
        return None
    offset, starts = np.cumsum(points) - points, series["start"].to_numpy()
    order = _placed_rows(frame["timestamp"], codes.to_numpy(), rank_of_code, offset, starts, step)
    if order is None:
        return None
    # a dense grid's place p of series s holds its grid time start_s + (p - offset_s) * step: the
    # ranks, families and times follow from the places, only the values are gathered
    t = np.empty(frame.height, dtype=np.int64)
    for first, count, start in zip(offset.tolist(), points.tolist(), starts.tolist()):
        t[first:first + count] = np.arange(start, start + count * step, step)
    family_of_rank = family_codes(series["resource"]).to_numpy()
    return pl.DataFrame({"rank": pl.Series(np.repeat(np.arange(len(points), dtype=np.uint32), points), dtype=pl.UInt32),
                         "family": pl.Series(np.repeat(family_of_rank, points)),
                         "t": pl.Series(t, dtype=pl.Int64), "value": frame["value"].gather(pl.Series(order))})


def _placed_rows(timestamps: pl.Series, codes: np.ndarray, rank_of_code: np.ndarray, offset: np.ndarray,
                 starts: np.ndarray, step: int) -> np.ndarray | None:
    """The row at each place (polars' index type), or None when a place is left empty. A row's
    place is its series' offset plus its grid index, computed block by block (engine.chunks)."""
    index = index_dtype()
    empty = np.iinfo(index).max  # no row number reaches it: polars' rows fit its index type
    order = np.full(timestamps.len(), empty, dtype=index)
    for first, t in row_blocks(timestamps, lambda chunk: chunk.dt.epoch("s").to_numpy()):
        rank = rank_of_code[codes[first:first + len(t)]]
        order[offset[rank] + (t - starts[rank]) // step] = np.arange(first, first + len(t), dtype=index)
    return None if (order == empty).any() else order


def _check_dense(samples: pl.DataFrame, keys: pl.DataFrame, grid: pl.DataFrame, step: int) -> None:
    """Each series has exactly one row per grid time of its site (no duplicates, no holes)."""
    per_series = samples.group_by("rank").agg(
        rows=pl.len(), repeats=(pl.col("t").diff() == 0).sum(), first=pl.col("t").first(),
        gaps=(pl.col("t").diff() > step).sum())
    stats = per_series.join(keys, on="rank").join(
        grid.select("site", "points", start=pl.col("start").dt.epoch("s")), on="site")
    duplicates = stats["repeats"].sum()
    if duplicates:
        raise TimelineError(f"timeline has {duplicates} rows sharing a (site, timestamp, node_type, pool, "
                            "state, resource) key; each key must appear once")
    holes = stats.filter((pl.col("rows") != pl.col("points")) | (pl.col("first") != pl.col("start"))
                         | (pl.col("gaps") > 0)).sort(SERIES_KEYS)
    if holes.height:
        row = holes.row(0, named=True)
        key = ", ".join(f"{name}={row[name]}" for name in SERIES_KEYS)
        raise TimelineError(f"timeline grid is irregular: {holes.height} series lack grid times, e.g. "
                            f"({key}) has {row['rows']} of the site's {row['points']} timestamps")
