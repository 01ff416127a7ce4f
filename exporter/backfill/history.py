"""What every backfill target gets: the timeline's samples before the cut-off, split into windows.

Shared by the promtool path (``blocks``) and the VictoriaMetrics import (``victoria``), so both
write the same samples with the same labels for the same timeline and ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from exporter.backfill.checked import (SERIES_KEYS, Prechecked, family_codes, placed_timeline,
                                      prechecked_timeline, rank_lookup)
from exporter.backfill.families import LINE_SCHEMA, family_lines
from exporter.backfill.openmetrics import check_origin, sample_values, series_labels, with_counters
from exporter.engine.chunks import index_dtype, row_blocks
from exporter.engine.running import settled_quanta, sums_before_runs
from exporter.engine.runs import runs, runs_by_value
from exporter.errors import TimelineError
from exporter.layout import read_families, read_timeline
from exporter.metrics import EXTRA_FAMILIES, ExtraFamily
from exporter.timeutil import utc_now

EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class History:
    """The samples to backfill (``sample_values`` columns: family, rank, t, value) and their series."""

    timeline_path: Path
    samples: pl.DataFrame  # only t < cutoff
    series: pl.DataFrame  # series_labels(): SERIES_KEYS, rank, labels
    cutoff: dt.datetime  # first time NOT backfilled; the live exporter owns [cutoff, ...)
    origins: dict[str, dt.datetime]  # site -> counters' origin (first grid time)
    step_seconds: int
    # the extra series families' samples before the cut-off (exporter.backfill.families.family_lines)
    families: pl.DataFrame = dataclasses.field(default_factory=lambda: pl.DataFrame(schema=LINE_SCHEMA))
    # each family series as a JSON object of name and labels, in the order of families' prefix categories
    family_metrics: pl.Series = dataclasses.field(default_factory=lambda: pl.Series("metric", [], dtype=pl.String))
    declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES

    @property
    def first_sample(self) -> dt.datetime:
        return datetime_of(self._times().min())

    @property
    def last_sample(self) -> dt.datetime:
        return datetime_of(self._times().max())

    def _times(self) -> pl.Series:
        """Every sample's time: the timeline's and the extra families' (an edge site with no Nova
        has only the latter; a daily family can start before the timeline's first hour)."""
        return pl.concat([self.samples["t"], self.families["t"]])

    @property
    def negative_samples(self) -> int:
        """Gauge samples < 0 (data anomalies kept by reconstruct)."""
        return self.samples.filter((pl.col("family") % 2 == 0) & (pl.col("value") < 0)).height


def history_before_cutoff(timeline_dir: str | Path, *, holdback: dt.timedelta, job: str, instance: str,
                          origin: dt.datetime | None = None, now: dt.datetime | None = None,
                          declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> History:
    """Read and check the timeline; keep the samples before ``min(now, end) - holdback``, with those
    of the extra series families stored beside it (``families/``, ``declared`` in exporter.metrics).

    TimelineError when the timeline is malformed or nothing lies before the cut-off.
    """
    opened = history_opening(timeline_dir, holdback=holdback, job=job, instance=instance, origin=origin, now=now,
                             declared=declared)
    return opened if isinstance(opened, History) else opened.history()


@dataclass(frozen=True)
class Opening:
    """A timeline read and checked but for the dense check (exporter.backfill.checked.Prechecked),
    with what that fixes already: the series, the cut-off, the extra families; and, when asked for,
    the first window's samples computed from its own rows (``first``), so that window can be
    written while :meth:`history` checks and sums the whole timeline."""

    timeline_path: Path
    prechecked: Prechecked
    series: pl.DataFrame
    cutoff: dt.datetime
    holdback: dt.timedelta
    origin: dt.datetime | None
    declared: tuple[ExtraFamily, ...]
    families: pl.DataFrame  # the extra families' lines (empty when reading them failed: ``deferred``)
    family_metrics: pl.Series
    deferred: TimelineError | None = None  # the families' error, raised where the whole path raises it
    first: tuple[dt.datetime, pl.DataFrame] | None = None  # window start, its sample_values rows
    windows: int | None = None  # how many windows a valid timeline gives (for a progress bar)

    def history(self) -> History:
        """The rest of :func:`history_before_cutoff`: its errors, in its order."""
        checked = placed_timeline(self.prechecked)
        kept = sample_values(checked, origin=self.origin, before=epoch_of(self.cutoff))
        if kept.height == 0:
            raise TimelineError(f"nothing to backfill: the whole timeline is at or after the cut-off "
                                f"{self.cutoff:%Y-%m-%d %H:%M} (holdback {self.holdback.total_seconds() / 3600:g}h)")
        if self.deferred is not None:
            raise self.deferred
        return History(timeline_path=self.timeline_path, samples=kept, series=self.series, cutoff=self.cutoff,
                       origins=checked.starts, step_seconds=checked.step_seconds, families=self.families,
                       family_metrics=self.family_metrics, declared=self.declared)


def history_opening(timeline_dir: str | Path, *, holdback: dt.timedelta, job: str, instance: str,
                    origin: dt.datetime | None = None, now: dt.datetime | None = None,
                    declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES, hours: int | None = None) -> Opening | History:
    """The first part of :func:`history_before_cutoff` (a timeline without rows: all of it); with
    ``hours``, the first window of that length computed alone when it surely equals the whole
    path's (BENCHMARKS.md, session 10: the first promtool starts sooner)."""
    timeline_path = Path(timeline_dir)
    timeline = read_timeline(timeline_path)
    if timeline.height == 0:  # an edge site without Nova: no node series, only its device families
        frames = read_families(timeline_path, [f.name for f in declared])
        if frames:
            return _families_only(timeline_path, frames, holdback=holdback, job=job, instance=instance, now=now,
                                  declared=declared, origin=origin)
    pre = prechecked_timeline(timeline)
    cutoff = min(now or utc_now(), max(pre.ends.values())) - holdback
    series = series_labels(pre, job=job, instance=instance)
    deferred = None
    try:
        families, metrics = family_lines(read_families(timeline_path, [f.name for f in declared]), declared,
                                         job=job, instance=instance, before=epoch_of(cutoff))
    except TimelineError as err:
        families, metrics, deferred = pl.DataFrame(schema=LINE_SCHEMA), pl.Series("metric", [], pl.String), err
    opened = Opening(timeline_path=timeline_path, prechecked=pre, series=series, cutoff=cutoff, holdback=holdback,
                     origin=origin, declared=declared, families=families, family_metrics=metrics, deferred=deferred)
    if hours is None or deferred is not None:
        return opened
    return dataclasses.replace(opened, first=first_window(pre, cutoff=cutoff, origin=origin, hours=hours),
                               windows=window_count(pre, cutoff=cutoff, hours=hours, extra=families))


def first_window(pre: Prechecked, *, cutoff: dt.datetime, origin: dt.datetime | None,
                 hours: int) -> tuple[dt.datetime, pl.DataFrame] | None:
    """The first window's rows of ``sample_values`` (gauges, then counters, each by rank and time)
    from that window's timeline rows alone, for a timeline that passes the dense check. None when
    they could differ from the whole path's: a site not starting at ``origin`` (the whole path
    fails), or a counter whose quantum (exporter.engine.running) the order of adding could move.
    Nothing here checks the window's rows: the whole path's dense check still decides."""
    if any(origin is not None and start != origin for start in pre.starts.values()):
        return None
    seconds, step = hours * 3600, pre.step_seconds
    first = epoch_of(min(pre.starts.values()))
    start = first // seconds * seconds
    end = min(start + seconds, epoch_of(cutoff))
    if end <= first:
        return None
    rank_of_code = rank_lookup(pre.keys)
    if rank_of_code is None:
        return None
    codes = pre.codes.to_numpy()
    # Σ|terms| per series in rank order; any order gives the whole path's quantum where it is settled
    # (N rows bound each series' count of terms)
    sums = abs_sums_by_rank(codes, rank_of_code, pre.frame["value"], step, pre.keys.height)
    quantum = settled_quanta(sums, np.full(pre.keys.height, pre.frame.height))
    if quantum is None:
        return None
    # the window's rows only: no array as long as the timeline is made (fresh memory, BENCHMARKS.md)
    rows = pre.frame.select(pl.arg_where(pl.col("timestamp") < datetime_of(end))).to_series()
    rank = rank_of_code[codes[rows.to_numpy()]]
    t = pre.frame["timestamp"].gather(rows).dt.epoch("s").to_numpy()
    order = np.argsort(rank.astype(np.int64) * (1 << 40) + t)  # by (rank, t)
    rows, rank, t = rows.gather(order), rank[order], t[order]
    family_of_rank = family_codes(pre.keys["resource"]).to_numpy()  # keys are in rank order (_ranked_keys)
    starts, ends = runs(rank)
    values = pl.DataFrame({"family": pl.Series(family_of_rank[rank]), "rank": pl.Series(rank, dtype=pl.UInt32),
                           "t": pl.Series(t, dtype=pl.Int64), "value": pre.frame["value"].gather(rows)})
    terms = values["value"].to_numpy() * step  # as sample_values' polars product: the same IEEE bits
    counters = sums_before_runs(terms, quantum[rank[starts]], starts, ends)
    return datetime_of(start), with_counters(values, pl.Series(counters))


def abs_sums_by_rank(codes: np.ndarray, rank_of_code: np.ndarray, values: pl.Series, step: int,
                     series: int) -> np.ndarray:
    """Σ|value · step| of each series (``rank_of_code[codes]``), in rank order, summed block by
    block (engine.chunks; 0.14 -> 0.02 s on 3.16M rows). The order of adding differs from one
    pass's; :func:`~exporter.engine.running.settled_quanta` allows any."""
    sums = np.zeros(series)
    for first, block in row_blocks(values):
        terms = block * step
        np.abs(terms, out=terms)
        sums += np.bincount(rank_of_code[codes[first:first + len(terms)]], weights=terms, minlength=series)
    return sums


def window_count(pre: Prechecked, *, cutoff: dt.datetime, hours: int, extra: pl.DataFrame) -> int:
    """How many windows of ``hours`` the samples before ``cutoff`` fill, with the extra families'
    lines: every grid time of every site (a dense grid has a sample at each)."""
    seconds, step = hours * 3600, pre.step_seconds
    times = pre.grid.select(t=pl.int_ranges(pl.col("start").dt.epoch("s"), pl.col("last").dt.epoch("s") + 1,
                                            step)).explode("t")
    times = pl.concat([times["t"].filter(times["t"] < epoch_of(cutoff)), extra["t"]])
    return (times // seconds).n_unique()


def _families_only(timeline_path: Path, frames: dict[str, pl.DataFrame], *, holdback: dt.timedelta, job: str,
                   instance: str, now: dt.datetime | None, declared: tuple[ExtraFamily, ...],
                   origin: dt.datetime | None) -> History:
    """History of a timeline with no rows whose families have some: their grid gives the step, the
    end and the cut-off, exactly as a timeline's would; their counters' first time is the origin."""
    times = pl.concat([frame.select(pl.col("site").cast(pl.String), "timestamp") for frame in frames.values()])
    stamps = times.get_column("timestamp").unique().sort()
    if stamps.len() < 2:
        raise TimelineError("the series families have a single timestamp: cannot infer their step")
    # the finest spacing: a daily family (lead times at midnight) beside the hourly grid must not
    # make the first two times (midnight, the grid's first hour) look like the step
    step = stamps.diff().min()
    cutoff = min(now or utc_now(), stamps.max() + step) - holdback
    lines, metrics = family_lines(frames, declared, job=job, instance=instance, before=epoch_of(cutoff))
    if lines.height == 0:
        raise TimelineError(f"nothing to backfill: every series family sample is at or after the cut-off "
                            f"{cutoff:%Y-%m-%d %H:%M} (holdback {holdback.total_seconds() / 3600:g}h)")
    origins = _counter_origins(frames, declared) or dict(
        times.group_by("site").agg(pl.col("timestamp").min()).sort("site").iter_rows())
    check_origin(origins, origin)
    empty = {"family": pl.UInt8(), "rank": pl.UInt32(), "t": pl.Int64(), "value": pl.Float64()}
    series = pl.DataFrame(schema={**{key: pl.String() for key in SERIES_KEYS}, "rank": pl.UInt32(),
                                  "labels": pl.String()})
    return History(timeline_path=timeline_path, samples=pl.DataFrame(schema=empty), series=series, cutoff=cutoff,
                   origins=origins, step_seconds=int(step.total_seconds()), families=lines, family_metrics=metrics,
                   declared=declared)


def _counter_origins(frames: dict[str, pl.DataFrame], declared: tuple[ExtraFamily, ...]) -> dict[str, dt.datetime]:
    """site -> first time of its counter families (where they integrate from; a daily gauge family
    may start at an earlier midnight)."""
    counters = {f.name for f in declared if f.kind == "counter"}
    parts = [frame.select(pl.col("site").cast(pl.String), "timestamp") for name, frame in frames.items()
             if name in counters and frame.height]
    if not parts:
        return {}
    return dict(pl.concat(parts).group_by("site").agg(pl.col("timestamp").min()).sort("site").iter_rows())


def split_windows(samples: pl.DataFrame, hours: int) -> list[tuple[dt.datetime, pl.DataFrame]]:
    """``samples`` cut into epoch-aligned windows of ``hours``, in time order (row order kept)."""
    return [(start, samples[rows]) for start, rows in window_rows(samples, hours)]


def window_rows(samples: pl.DataFrame, hours: int) -> list[tuple[dt.datetime, pl.Series]]:
    """The row numbers of each epoch-aligned window of ``hours`` in ``samples``, in time order,
    each ascending: ``samples[rows]`` is the window (gathered only when it is written)."""
    seconds = hours * 3600
    rows = rows_by_key(samples.select(pl.col("t") // seconds).to_series())
    return [(datetime_of(window * seconds), part) for window, part in rows.items()]  # ascending windows


def rows_by_key(keys: pl.Series) -> dict[int, pl.Series]:
    """Row numbers of each value of the integer ``keys``, ascending, the values in ascending order
    (the parts ``partition_by`` would make, sorted by value, without the copy). Each series'
    samples are in time order, so a window's (or a family's) rows come in long runs: one pass
    finds the runs, no hash per row. The rows are polars' index type (a gather by Int64 rows converted them first), laid
    out value after value in one array, each value's a slice of it: 0.23 -> 0.14 s of CPU for a
    year's windows, found and gathered (BENCHMARKS.md session 13)."""
    if keys.len() == 0:
        return {}
    values = keys.to_numpy()
    starts, ends, bounds = runs_by_value(values)  # each value's runs together, in row order
    lengths = ends - starts
    placed = np.cumsum(lengths) - lengths  # where each run starts in the laid-out rows
    index = index_dtype()
    # a row = its place in the layout + (its run's start - the run's place); unsigned, so a negative
    # shift wraps around and the sum wraps back (every row number fits polars' index type)
    rows = np.repeat((starts - placed).astype(index), lengths)
    rows += np.arange(len(values), dtype=index)
    laid_out, value_bounds = pl.Series(rows), np.r_[placed, len(values)][bounds]
    return {int(values[starts[first]]): laid_out.slice(int(begin), int(end - begin))
            for first, begin, end in zip(bounds[:-1], value_bounds[:-1], value_bounds[1:])}


def epoch_of(moment: dt.datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def datetime_of(seconds: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=int(seconds))


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
