"""Extra series families (exporter.metrics.EXTRA_FAMILIES) -> OpenMetrics lines beside the timeline's.

Each family's long frame (labels, timestamp, value) is validated by
``exporter.metrics.checked_family_frame`` and becomes rows ready for ``write_csv``: ``family``
(index into the declared tuple), ``prefix`` (Enum: ``name{labels}``, labels sorted with the fixed
job/instance, values escaped), ``value`` (-0.0 normalised) and ``t`` (epoch seconds), in output
order (family, then series, then time). Values are written as given: a gauge's value at t is the
producer's (for the booked-ahead lens, the mean over [t, t + horizon) as known at t).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import BinaryIO

import polars as pl

from exporter.backfill.openmetrics import escape_label, escaped_label, write_lines
from exporter.errors import TimelineError
from exporter.familyframe import checked_family_frame
from exporter.metrics import ExtraFamily

LINE_SCHEMA = {"family": pl.UInt8(), "prefix": pl.String(), "value": pl.Float64(), "t": pl.Int64()}


def family_lines(frames: Mapping[str, pl.DataFrame], families: Sequence[ExtraFamily], *, job: str,
                 instance: str, before: int | None = None) -> tuple[pl.DataFrame, pl.Series]:
    """The samples of every family in ``frames`` (by name; each must be declared in ``families``)
    with ``t < before`` (epoch seconds, when given), as LINE_SCHEMA rows in output order; and each
    series as the JSON object of its name and labels (``{"__name__":"…","instance":"…",…}``, for
    stores that import JSON), in the order of the ``prefix`` Enum's categories."""
    by_name = {family.name: (index, family) for index, family in enumerate(families)}
    undeclared = sorted(set(frames) - set(by_name))
    if undeclared:
        raise TimelineError(f"series famil(ies) {', '.join(undeclared)} are not declared in exporter.metrics")
    checked = []
    for name in sorted(frames, key=lambda n: by_name[n][0]):
        index, family = by_name[name]
        frame = checked_family_frame(family, frames[name])
        if before is not None:
            frame = frame.filter(pl.col("timestamp").dt.epoch("s") < before)
        if frame.height:
            checked.append((index, family, frame, _series(frame, family, job=job, instance=instance)))
    if not checked:
        return pl.DataFrame(schema=LINE_SCHEMA), pl.Series("metric", [], dtype=pl.String)
    # one Enum over every family's series, so the parts stack and each row costs an integer
    prefix = pl.Enum(pl.concat([series["prefix"] for *_, series in checked]))
    metrics = pl.concat([series["metric"] for *_, series in checked])
    return pl.concat([
        frame.join(series.with_columns(pl.col("prefix").cast(prefix)), on=list(family.labels), how="left",
                   maintain_order="left")
        .select(family=pl.lit(index, dtype=pl.UInt8), prefix=pl.col("prefix"),
                value=pl.col("value") + 0.0, t=pl.col("timestamp").dt.epoch("s"))
        for index, family, frame, series in checked]), metrics


def _series(frame: pl.DataFrame, family: ExtraFamily, *, job: str, instance: str) -> pl.DataFrame:
    """One row per series of a family: its labels, ``prefix`` (``name{labels}``, label names
    sorted with the fixed job/instance, values escaped) and ``metric`` (the same as JSON)."""
    fixed = {"instance": pl.lit(escape_label(instance)), "job": pl.lit(escape_label(job))}
    values = {**fixed, **{name: escaped_label(pl.col(name)) for name in family.labels}}
    parts = [pl.lit(family.sample_name + "{")]
    for i, name in enumerate(sorted(values)):
        parts += [pl.lit(("," if i else "") + f'{name}="'), values[name], pl.lit('"')]
    raw = {"__name__": pl.lit(family.sample_name), "instance": pl.lit(instance), "job": pl.lit(job),
           **{name: pl.col(name) for name in family.labels}}
    return (frame.select(family.labels).unique(maintain_order=True)
            .with_columns(prefix=pl.concat_str([*parts, pl.lit("}")]),
                          metric=pl.struct(**{name: raw[name] for name in sorted(raw)}).struct.json_encode()))


def family_header(family: ExtraFamily) -> bytes:
    """``# HELP``/``# TYPE``/``# UNIT`` lines of one extra family."""
    lines = [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
    if family.unit:
        lines.append(f"# UNIT {family.name} {family.unit}")
    return ("\n".join(lines) + "\n").encode()


def write_family_samples(parts: Sequence[tuple[int, pl.DataFrame]], families: Sequence[ExtraFamily],
                         out: BinaryIO) -> None:
    """Write ``parts`` (openmetrics.family_parts of :func:`family_lines` rows) as family blocks; the
    caller writes ``# EOF``."""
    for index, part in parts:
        out.write(family_header(families[index]))
        write_lines(part, out)


def family_counts(lines: pl.DataFrame, families: Sequence[ExtraFamily]) -> dict[str, dict[str, int]]:
    """Per family name: series and samples written."""
    counts = (lines.group_by("family").agg(series=pl.col("prefix").n_unique(), samples=pl.len()).sort("family"))
    return {families[index].name: {"series": series, "samples": samples}
            for index, series, samples in counts.iter_rows()}
