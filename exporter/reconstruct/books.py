"""The trimming stages every span level goes through, each recording what it removes.

A level's raw windows (one per source row) are *settled* (rule failures become rejected rows),
*cut at the snapshot* (nothing is known after it), optionally *merged* per identity (overlap
becomes duplicate_entity hours) and *clipped into a parent level*. Every stage returns the
surviving pieces and records the rest in :class:`SpanBooks`: a row with nothing left is a
rejected row (with its reason), a trimmed row keeps its span and the trim is clipped hours
(with its reason). ``exporter.reconstruct.audit`` checks that these books balance.

All frames here are collected (eager): the orchestrator decides when to collect.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from exporter.adapters import common
from exporter.engine import eager_clip, intervals, painter, segments
from exporter.reconstruct.conflicts import overlap_pieces
from exporter.columns import REJECT_SCHEMA, SPAN_SCHEMA, TIME, conform
from exporter.engine.intervals import MICROSECONDS_PER_HOUR, hours_between
from exporter.engine.sweepline import order_free_sum


# Below this a "trim" is float round-off of two sums, not a cut (real cuts are >= 1 second).
FLOAT_NOISE_HOURS = 1e-6
KEYS = ["level", "source_table"]


@dataclass
class SpanBooks:
    """What went in, what was rejected and what was clipped, per level and source table."""

    site: str
    snapshot_time: dt.datetime
    inputs: list[pl.DataFrame] = field(default_factory=list)
    rejected: list[pl.DataFrame] = field(default_factory=list)
    clipped: list[pl.DataFrame] = field(default_factory=list)
    # per manual rule, the lower sources' rows and hours it overrides (manual_rules.overridden_by_rules)
    overridden_by_rules: list[pl.DataFrame] = field(default_factory=list)
    # pieces of time a row lost to an earlier row of its identity, with both rows (conflicts.overlap_pieces)
    conflicts: list[pl.DataFrame] = field(default_factory=list)

    def settled(self, windows: pl.DataFrame, *, detail: pl.Expr, carry: Sequence[str] = ()) -> pl.DataFrame:
        """Rows of ``windows`` (with level, rejection_reason) that pass their rules; the rest rejected.

        The kept rows are slimmed to the span columns (+ ``carry``), with their raw window as
        original_start/original_end and a row number ``_row`` that identifies them from here on.
        """
        self.inputs.append(input_totals(windows, snapshot_time=self.snapshot_time))
        kept = self._split(windows, detail=detail)
        columns = [c for c in kept.columns if c in SPAN_SCHEMA or c in carry or c == "level"]
        return kept.select(columns).with_row_index("_row").with_columns(
            pl.col("start").alias("original_start"), pl.col("end").alias("original_end"))

    def cut_at_snapshot(self, spans: pl.DataFrame) -> pl.DataFrame:
        """Spans cut at the snapshot time; spans starting at or after it are rejected (after_snapshot)."""
        snapshot = pl.lit(self.snapshot_time, dtype=TIME)
        late = spans.with_columns(
            pl.when(pl.col("start") >= snapshot).then(pl.lit("after_snapshot")).alias("rejection_reason"))
        kept = self._split(late, detail=pl.lit('{"snapshot_time": "%s"}' % self.snapshot_time))
        cut = kept.with_columns(pl.when(pl.col("end") > snapshot).then(snapshot).otherwise(pl.col("end")).alias("end"))
        self._record_trim(kept, cut, reason="after_snapshot")
        return cut

    def merged(self, spans: pl.DataFrame, *, by: Sequence[str], conflicts: bool = False) -> pl.DataFrame:
        """Spans trimmed so no time is covered twice per ``by``: the earlier piece keeps it.

        Of rows with the same start and end the first in row id order keeps it (``in_row_id_order``):
        which row a merge keeps must not follow the run-varying order rows arrive in.
        A row left with nothing is rejected as duplicate_entity; the trimmed part of the
        others is clipped hours with reason duplicate_entity. ``conflicts``: also record each lost
        piece with the row that keeps it (``self.conflicts``, exporter.reconstruct.conflicts).
        """
        overlap = intervals.duplicate_overlap(
            common.in_row_id_order(spans).lazy(), by=by, open_end=self.snapshot_time, hours="_overlap").collect()
        shift = pl.duration(microseconds=(pl.col("_overlap") * MICROSECONDS_PER_HOUR).round().cast(pl.Int64))
        closed = pl.col("end").fill_null(pl.lit(self.snapshot_time, dtype=TIME))
        trimmed = overlap.with_columns((pl.col("start") + shift).alias("start")).filter(pl.col("start") < closed)
        if conflicts:
            self.conflicts.append(overlap_pieces(overlap, trimmed, by=by, lost_end=pl.col("start") + shift,
                                                 snapshot_time=self.snapshot_time))
        return self._kept(spans, trimmed.drop("_overlap"), rejected="duplicate_entity", clipped="duplicate_entity",
                          detail=pl.lit('{"overlaps": "an earlier row of the same identity"}'))

    def clipped_into(self, spans: pl.DataFrame, parents: pl.DataFrame, *, by: Sequence[str],
                     reason: str | None = None, outside: bool = False,
                     clipped: str | None = None) -> pl.DataFrame:
        """Pieces of ``spans`` inside the union of their key's ``parents`` (``outside=True``: not in it).

        A row with no piece kept is rejected with ``reason``; the removed part of the others
        is clipped hours (``clipped``). Both default to outside_parent, or to duplicate_entity when
        keeping the outside (the parents' time is counted through them): a row wholly under a
        parent loses its time for the same reason as a row partly under one.
        """
        # The pieces come with all of their row's columns: a row cut into pieces earlier (an exclude
        # rule) repeats its _row, and its other columns agree.
        kept = eager_clip.clip_rows_to_parent(spans, parents.select(*by, "start", "end"), by=by,
                                              open_end=self.snapshot_time, outside=outside)
        detail = pl.struct([pl.col(k).cast(pl.String) for k in by]).struct.json_encode()
        lost = "duplicate_entity" if outside else "outside_parent"
        return self._kept(spans, kept, rejected=reason or lost, clipped=clipped or lost,
                          detail=detail)

    def split_into(self, spans: pl.DataFrame, parents: pl.DataFrame, *, by: Sequence[str], take: Sequence[str],
                   reason: str = "outside_parent") -> pl.DataFrame:
        """Pieces of ``spans`` inside each of their key's ``parents``, each with that parent's ``take``
        columns (e.g. the host and size of a placement segment).

        Overlapping parents of one key count once (the earlier keeps the overlap). A row with no
        piece is rejected with ``reason``; the rest of the others is clipped hours with ``reason``.
        Pieces are numbered (``_piece``) so later stages keep each piece's own columns.
        """
        # One parent per key (each instance's one placement segment on a site where none moves, or its
        # one occupied piece) needs no sort; split_by_segments orders the pieces by child itself.
        disjoint = segments.first_wins(parents.lazy().select(*by, "start", "end", *take), by=by,
                                       open_end=self.snapshot_time, one_per_key=_one_row_per(parents, by))
        pieces = segments.split_by_segments(spans.lazy(), disjoint, by=by, take=take,
                                            open_end=self.snapshot_time).collect()
        pieces = pieces.drop("_piece", strict=False).with_row_index("_piece")
        detail = pl.struct([pl.col(k).cast(pl.String) for k in by]).struct.json_encode()
        return self._kept(spans, pieces, rejected=reason, clipped=reason, detail=detail)

    def dropped(self, spans: pl.DataFrame, where: pl.Expr, *, reason: str, detail: pl.Expr) -> pl.DataFrame:
        """``spans`` without the pieces ``where`` holds for: a row left with none is rejected with
        ``reason``, the lost pieces of the others are clipped hours with ``reason``."""
        return self._kept(spans, spans.filter(~where.fill_null(False)), rejected=reason, clipped=reason,
                          detail=detail)

    def painted(self, layers: Sequence[pl.DataFrame], *, by: Sequence[str],
                tombstones: Sequence[pl.DataFrame | None] | None = None) -> list[pl.DataFrame]:
        """Each layer's pieces that no higher layer (or its tombstones) covers (exporter.engine.painter).

        ``layers[0]`` wins everywhere it speaks. A lower row with no piece left is rejected as
        overridden; the lost part of the others is clipped hours with reason overridden.
        """
        painted = painter.paint(layers, by=by, open_end=self.snapshot_time, tombstones=tombstones)
        detail = pl.lit('{"overridden_by": "a higher-priority source"}')
        return painted[:1] + [self._kept(layer, kept, rejected="overridden", clipped="overridden", detail=detail)
                              for layer, kept in zip(layers[1:], painted[1:])]

    def excluded(self, spans: pl.DataFrame, *, rule_id: str, matched: pl.Expr, start: dt.datetime | None,
                 end: dt.datetime | None) -> pl.DataFrame:
        """``spans`` without the time of ``matched`` rows inside [start, end) (either open).

        The removed pieces are rejected rows (reason manual_rule, ``rule_id``), one per piece:
        a row only partly inside keeps its other pieces (same ``_row``) and is still used.
        """
        hit = spans.filter(matched.fill_null(False))
        if not hit.height:
            return spans
        cut = pl.LazyFrame({"__rule": [0], "start": [start or dt.datetime(1, 1, 1)], "end": [end]},
                           schema={"__rule": pl.Int32, "start": TIME, "end": TIME})
        inside, outside = intervals.clip_to_parent(hit.lazy().with_columns(pl.lit(0, pl.Int32).alias("__rule")),
                                                   cut, by=["__rule"], open_end=self.snapshot_time)
        pieces = inside.drop("__rule", "trimmed").collect().with_columns(
            pl.lit("manual_rule").alias("rejection_reason"), pl.lit(rule_id).alias("rule_id"))
        self._split(pieces, detail=pl.struct(pl.lit(rule_id).alias("rule"), pl.col("original_start").cast(pl.String),
                                             pl.col("original_end").cast(pl.String)).struct.json_encode())
        kept = outside.drop("__rule", "trimmed").collect().select(spans.columns)
        return pl.concat([spans.filter(~matched.fill_null(False)), kept], how="vertical")

    def left_out(self, rows: pl.DataFrame, *, why: str) -> None:
        """Reject every row of ``rows`` as overridden (a source the site's priority leaves out)."""
        self._split(rows.with_columns(pl.lit("overridden").alias("rejection_reason")),
                    detail=pl.lit('{"why": %s}' % json.dumps(why)))

    def _kept(self, before: pl.DataFrame, after: pl.DataFrame, *, rejected: str, clipped: str,
              detail: pl.Expr) -> pl.DataFrame:
        """``after``; rows of ``before`` with no piece in it are rejected, the rest's loss is clipped."""
        survived = _survived(before, after)
        lost = before.filter(~survived).with_columns(pl.lit(rejected).alias("rejection_reason"))
        self._split(lost, detail=detail)
        self._record_trim(before.select(*TRIM_COLUMNS, "_row").filter(survived), after, reason=clipped)
        return after

    def _split(self, frame: pl.DataFrame, *, detail: pl.Expr) -> pl.DataFrame:
        kept, rejected = split_rejected(frame.lazy(), site=self.site, level=None, snapshot_time=self.snapshot_time,
                                        detail=detail.alias("rejection_detail"))
        self.rejected.append(rejected.collect())
        return kept.collect()

    def _record_trim(self, before: pl.DataFrame, after: pl.DataFrame, *, reason: str) -> None:
        self.clipped.append(trimmed_hours(before, after, reason=reason, snapshot_time=self.snapshot_time))

    def all_rejected(self) -> pl.DataFrame:
        """Every rejected row so far, in REJECT_SCHEMA."""
        return pl.concat([conform(r, REJECT_SCHEMA) for r in self.rejected], how="vertical")

    def all_clipped(self) -> pl.DataFrame:
        """level, source_table, reason, year, hours of every trim so far."""
        return pl.concat(self.clipped, how="vertical")

    def all_inputs(self) -> pl.DataFrame:
        return pl.concat(self.inputs, how="vertical")


def input_totals(windows: pl.DataFrame, *, snapshot_time: dt.datetime) -> pl.DataFrame:
    """level, source_table, rows_in, hours_in of an adapter's raw windows (kept and rejected)."""
    return windows.group_by(KEYS).agg(
        pl.len().alias("rows_in"), order_free_sum(hours_between("start", "end", snapshot_time=snapshot_time)).alias("hours_in"))


TRIM_COLUMNS = ("level", "source_table", "original_start", "start", "end")  # what trimmed_hours reads


def trimmed_hours(before: pl.DataFrame, after: pl.DataFrame, *, reason: str, snapshot_time: dt.datetime) -> pl.DataFrame:
    """level, source_table, reason, year, hours: span-hours in ``before`` but not in ``after``.

    Both frames carry TRIM_COLUMNS; ``after`` holds the
    pieces that survive a trimming stage, minus rows rejected whole (the caller drops those
    from ``before`` too, or accounts them as rejected). Year = year of the row's raw start.
    """
    keys = ["level", "source_table", "year"]
    hours = order_free_sum(hours_between("start", "end", snapshot_time=snapshot_time))
    was, now = _per_year(before, hours.alias("was")), _per_year(after, hours.alias("now"))
    return (
        was.join(now, on=keys, how="inner")
        .with_columns((pl.col("was") - pl.col("now")).alias("hours"), pl.lit(reason).alias("reason"))
        .filter(pl.col("hours") > FLOAT_NOISE_HOURS)
        .select("level", "source_table", "reason", "year", "hours")
    )


def _per_year(frame: pl.DataFrame, total: pl.Expr) -> pl.DataFrame:
    """level, source_table, year (of ``original_start``) and ``total`` of each.

    A frame of one level and one source table (nearly every trim) is grouped by the year alone:
    polars groups by several keys by row-encoding them, text and all (a run's 28 trims: 0.60 ->
    0.25 s, BENCHMARKS.md session 10)."""
    year = pl.col("original_start").dt.year().alias("year")
    if not (_one_value(frame, "level") and _one_value(frame, "source_table")):
        return frame.group_by("level", "source_table", year).agg(total)
    first = frame.row(0, named=True)
    return frame.group_by(year).agg(total).with_columns(
        *(pl.lit(first[name], dtype=frame.schema[name]).alias(name) for name in ("level", "source_table")))


def _one_value(frame: pl.DataFrame, column: str) -> bool:
    """Whether ``column`` holds one value, not null, in every row (false for no rows)."""
    values = pl.col(column)
    return bool(frame.select((values == values.first()).all() & values.is_not_null().all() & (pl.len() > 0)).item())


def split_rejected(
    windows: pl.LazyFrame, *, site: str, level: str | None, snapshot_time: dt.datetime, detail: pl.Expr
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(rows whose ``rejection_reason`` is null, the others in REJECT_SCHEMA).

    ``windows`` carries source_table, source_id, start, end and rejection_reason (and level
    when ``level`` is None); ``detail`` is
    evaluated on the rejected rows (which join failed, the original values).
    """
    kept = windows.filter(pl.col("rejection_reason").is_null()).drop("rejection_reason")
    rejected = windows.filter(pl.col("rejection_reason").is_not_null()).with_columns(
        pl.lit(site).alias("site"),
        pl.lit(level).alias("level") if level is not None else pl.col("level"),
        detail,
        hours_between("start", "end", snapshot_time=snapshot_time).alias("hours"),
    )
    return kept, conform(rejected, REJECT_SCHEMA)


def _survived(before: pl.DataFrame, after: pl.DataFrame) -> pl.Series:
    """Per row of ``before``: whether a piece of its ``_row`` is in ``after``. ``_row`` is a row
    number (``settled``), so one flag per number does what a unique, an anti and a semi join on it did."""
    size = max(before.get_column("_row").max() or 0, after.get_column("_row").max() or 0) + 1
    flags = pl.zeros(size, dtype=pl.Boolean, eager=True).scatter(after.get_column("_row"), True)
    return flags.gather(before.get_column("_row"))


def _one_row_per(frame: pl.DataFrame, keys: Sequence[str]) -> bool:
    """Whether no two rows of ``frame`` share their ``keys`` (two null keys count as one value).
    One key is counted as itself: a struct of it is row-encoded (instances' text ids, 330k: 0.040 ->
    0.012 s, BENCHMARKS.md session 11). ``keys`` is never empty (every caller names one)."""
    key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    return frame.select(key.n_unique()).item() == frame.height
