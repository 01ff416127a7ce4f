"""What every backfill target gets: the timeline's samples before the cut-off, split into windows.

Shared by the promtool path (``blocks``) and the VictoriaMetrics import (``victoria``), so both
write the same samples with the same labels for the same timeline and ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.backfill.checked import SERIES_KEYS, checked_timeline
from exporter.backfill.families import LINE_SCHEMA, family_lines
from exporter.backfill.openmetrics import check_origin, sample_values, series_labels
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
    timeline_path = Path(timeline_dir)
    timeline = read_timeline(timeline_path)
    if timeline.height == 0:  # an edge site without Nova: no node series, only its device families
        frames = read_families(timeline_path, [f.name for f in declared])
        if frames:
            return _families_only(timeline_path, frames, holdback=holdback, job=job, instance=instance, now=now,
                                  declared=declared, origin=origin)
    checked = checked_timeline(timeline)
    cutoff = min(now or utc_now(), max(checked.ends.values())) - holdback
    series = series_labels(checked, job=job, instance=instance)
    kept = sample_values(checked, origin=origin).filter(pl.col("t") < epoch_of(cutoff))
    if kept.height == 0:
        raise TimelineError(f"nothing to backfill: the whole timeline is at or after the cut-off "
                            f"{cutoff:%Y-%m-%d %H:%M} (holdback {holdback.total_seconds() / 3600:g}h)")
    families, metrics = family_lines(read_families(timeline_path, [f.name for f in declared]), declared, job=job,
                                     instance=instance, before=epoch_of(cutoff))
    return History(timeline_path=timeline_path, samples=kept, series=series, cutoff=cutoff,
                   origins=checked.starts, step_seconds=checked.step_seconds, families=families,
                   family_metrics=metrics, declared=declared)


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
    return [(datetime_of(window * seconds), part) for window, part in sorted(rows.items())]


def rows_by_key(keys: pl.Series) -> dict[int, pl.Series]:
    """Row numbers of each value of the integer ``keys``, ascending (``partition_by`` with
    ``maintain_order`` without the copy). Each series' samples are in time order, so a window's
    (or a family's) rows come in long runs: one pass finds the runs, no hash per row."""
    if keys.len() == 0:
        return {}
    starts = (keys != keys.shift(1)).fill_null(True).arg_true()  # first row of each run
    runs = pl.DataFrame({"key": keys.gather(starts), "start": starts.cast(pl.Int64)}).with_columns(
        end=pl.col("start").shift(-1, fill_value=keys.len()))
    return {value: part.select(pl.int_ranges("start", "end").explode()).to_series()
            for (value,), part in runs.partition_by("key", maintain_order=True, as_dict=True).items()}


def epoch_of(moment: dt.datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def datetime_of(seconds: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=int(seconds))


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
