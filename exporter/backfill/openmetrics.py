"""Timeline -> OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``.

Pure functions, vectorised with polars: the timeline becomes integer-coded numeric samples, and
the text is one ``write_csv`` per metric family with ``name{labels}`` as an Enum column (no Python
loop per sample). The series contract is ``exporter.metrics`` and
``docs/metrics.md``:

- gauge ``<family.gauge>`` at grid time t = the timeline value at t (the mean over [t, t + step));
- counter ``<family.counter>_total`` at grid time t_k = sum_{j<k} value_j * step_seconds, i.e. the
  exact integral of the gauge from the timeline's first grid time (the site's history start), in
  resource-seconds, summed exactly and rounded once (exporter.engine.running). Negative leaves (data anomalies the reconstruction keeps) are integrated as
  they are, so the live exporter's ``counters_until`` continues the same number.

Every sample carries the labels ``instance, job, node_type, pool, site, state`` (sorted, escaped),
with ``job``/``instance`` fixed (docs/metrics.md "job and instance"). Timestamps are integer
seconds, strictly increasing per series; the output ends with ``# EOF\\n`` and nothing after it.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from typing import BinaryIO

import polars as pl

from exporter.backfill.checked import SERIES_KEYS, CheckedTimeline, Prechecked, checked_timeline
from exporter.engine.running import running_sum_before_runs
from exporter.engine.runs import runs_by_value
from exporter.errors import TimelineError
from exporter.metrics import FAMILIES, Family

EOF = b"# EOF\n"


def series_labels(checked: CheckedTimeline | Prechecked, *, job: str, instance: str) -> pl.DataFrame:
    """One row per series: SERIES_KEYS, ``rank`` (UInt32: position in output order) and
    ``labels`` (``{instance="…",…,state="…"}``, label names sorted, values escaped)."""
    fixed = f'{{instance="{escape_label(instance)}",job="{escape_label(job)}",'
    parts = [pl.lit(fixed)]
    for i, name in enumerate(("node_type", "pool", "site", "state")):
        parts += [pl.lit(("," if i else "") + f'{name}="'), escaped_label(pl.col(name)), pl.lit('"')]
    return checked.keys.select(*SERIES_KEYS, "rank", labels=pl.concat_str([*parts, pl.lit("}")]))


def sample_values(checked: CheckedTimeline, *, origin: dt.datetime | None = None,
                  before: int | None = None) -> pl.DataFrame:
    """Every sample as numbers, in output order (compact: no strings).

    Output columns: ``family`` (UInt8: 2 * index into exporter.metrics.FAMILIES, + 1 for the
    counter), ``rank`` (from :func:`series_labels`), ``t`` (Int64 epoch seconds), ``value``.
    All gauge rows, then all counter rows; each in (rank, t) order, which within a family is the
    output order. ``origin`` (if given) must equal each site's first grid time: counters
    integrate from there. ``before`` (epoch seconds, if given): only the samples at earlier
    times; the counters are summed over the whole timeline first, so they are the same numbers.
    """
    check_origin(checked.starts, origin)
    gauges = checked.samples.select("family", "rank", "t", "value")
    counters = running_sum_before_runs(gauges["value"] * checked.step_seconds, gauges["rank"])
    if before is not None:  # cut before the counter rows are made: half the rows to copy
        kept = gauges["t"] < before
        gauges, counters = gauges.filter(kept), counters.filter(kept)
    return with_counters(gauges, counters)


def with_counters(gauges: pl.DataFrame, counter_values: pl.Series) -> pl.DataFrame:
    """The gauge rows (family, rank, t, value), then each one's counter row: family + 1, ``counter_values``."""
    return pl.concat([gauges, gauges.with_columns(family=pl.col("family") + 1, value=counter_values)])


def check_origin(starts: dict[str, dt.datetime], origin: dt.datetime | None) -> None:
    """Each site's counters start at ``origin`` (when given; the live exporter integrates from its
    ``history_start``), else the history and the live values would not be one counter."""
    late = {site: start for site, start in starts.items() if origin is not None and start != origin}
    if late:
        site, start = sorted(late.items())[0]
        raise TimelineError(f"timeline for site {site!r} starts at {start:%Y-%m-%d %H:%M}, but counters must "
                            f"integrate from {origin:%Y-%m-%d %H:%M}; reconstruct from that time")


def sample_lines(values: pl.DataFrame, prefixes: pl.Series) -> pl.DataFrame:
    """``values`` (any row subset of :func:`sample_values`) ready for :func:`write_samples`;
    ``prefixes`` from :func:`sample_prefixes`.

    Output columns: ``family``, ``prefix`` (Enum: metric name + label set, so each row costs an
    integer, not a copy of the string), ``value`` (Float64, -0.0 normalised), ``t``.
    """
    code = pl.col("rank").cast(pl.Int64) * 2 + pl.col("family").cast(pl.Int64) % 2
    return pl.DataFrame({
        "family": values["family"],
        "prefix": prefixes.gather(values.select(code).to_series()),
        "value": values["value"] + 0.0,  # + 0.0 turns -0.0 into 0.0, so equal values print equal bytes
        "t": values["t"],
    })


def sample_prefixes(series: pl.DataFrame) -> pl.Series:
    """Enum Series: index 2*rank = gauge ``name{labels}``, 2*rank + 1 = the counter's."""
    gauge_names = {f.resource: f.gauge for f in FAMILIES}
    counter_names = {f.resource: f.counter_sample for f in FAMILIES}
    ordered = series.sort("rank")
    text = pl.concat([
        ordered.select(pl.col("rank"), kind=pl.lit(0), prefix=pl.concat_str([
            pl.col("resource").replace_strict(gauge_names, return_dtype=pl.String), pl.col("labels")])),
        ordered.select(pl.col("rank"), kind=pl.lit(1), prefix=pl.concat_str([
            pl.col("resource").replace_strict(counter_names, return_dtype=pl.String), pl.col("labels")])),
    ]).sort("rank", "kind")["prefix"]
    return text.cast(pl.Enum(text))


def escape_label(value: str) -> str:
    """OpenMetrics label-value escaping: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escaped_label(expr: pl.Expr) -> pl.Expr:
    """:func:`escape_label` as a polars expression."""
    return (expr.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
            .str.replace_all("\n", "\\n", literal=True))


def family_header(index: int) -> bytes:
    """``# HELP``/``# TYPE``/``# UNIT`` lines for family ``index`` (even = gauge, odd = counter)."""
    family: Family = FAMILIES[index // 2]
    if index % 2 == 0:
        name, kind, unit = family.gauge, "gauge", family.gauge_unit
        help_text = f"{family.help}; mean over the step starting at the sample time"
    else:
        name, kind, unit = family.counter, "counter", family.counter_unit
        help_text = f"{family.help}; integral since the site's history start, in resource-seconds"
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    if unit:
        lines.append(f"# UNIT {name} {unit}")
    return ("\n".join(lines) + "\n").encode()


def write_samples(parts: Sequence[tuple[int, pl.DataFrame]], out: BinaryIO, *, eof: bool = True,
                  before_family: Callable[[], None] | None = None) -> None:
    """Write ``parts`` (:func:`family_parts` of rows from :func:`sample_lines`) as one OpenMetrics
    document (``eof=False``: without the final ``# EOF``, so more families can follow).
    ``before_family`` is called before each family is written (backfill's workers stop there when
    the run is failing or interrupted).

    One ``write_csv`` per family with a space separator and no quoting produces exactly
    ``name{labels} value timestamp`` lines (polars prints floats in shortest round-trip form).
    """
    for index, part in parts:
        if before_family is not None:
            before_family()
        out.write(family_header(index))
        write_lines(part, out)
    if eof:
        out.write(EOF)


def write_lines(part: pl.DataFrame, out: BinaryIO) -> None:
    """``part``'s rows as ``name{labels} value timestamp`` lines (one ``write_csv``)."""
    part.select("prefix", "value", "t").write_csv(out, include_header=False, quote_style="never", separator=" ",
                                                  line_terminator="\n")


def family_parts(lines: pl.DataFrame) -> list[tuple[int, pl.DataFrame]]:
    """The file order of ``lines`` (rows with a ``family`` column), the one both writers and the
    samples' digest (digest.samples_sha256) follow: family by family in family order, each
    family's rows in row order. A window's rows hold each family in one run, so its parts are
    slices of ``lines``, not copies (``partition_by`` copied every window once more,
    BENCHMARKS.md); a family in several runs is its runs' slices put together."""
    family = lines["family"].to_numpy()
    starts, ends, bounds = runs_by_value(family)
    slices = [lines.slice(int(start), int(end - start)) for start, end in zip(starts, ends)]
    return [(int(family[starts[first]]), pl.concat(slices[first:last], rechunk=False))  # one: itself
            for first, last in zip(bounds[:-1], bounds[1:])]


def render_openmetrics(timeline: pl.DataFrame, *, job: str, instance: str,
                       origin: dt.datetime | None = None, step_seconds: int | None = None) -> bytes:
    """The whole timeline as one OpenMetrics document (bytes). See the module docstring."""
    checked = checked_timeline(timeline, step_seconds=step_seconds)
    series = series_labels(checked, job=job, instance=instance)
    buffer = io.BytesIO()
    write_samples(family_parts(sample_lines(sample_values(checked, origin=origin), sample_prefixes(series))),
                  buffer)
    return buffer.getvalue()
