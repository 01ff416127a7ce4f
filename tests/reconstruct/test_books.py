"""SpanBooks' trimming stages, called directly."""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.reconstruct.books import SpanBooks

SNAPSHOT = dt.datetime(2024, 1, 1)
TIME = pl.Datetime("us")


def day(d: int, h: int = 0) -> dt.datetime:
    return dt.datetime(2023, 12, d, h)


def rows(*windows: tuple) -> pl.DataFrame:
    """host, start, end rows as a level's settled spans."""
    books = SpanBooks(site="s", snapshot_time=SNAPSHOT)
    frame = pl.DataFrame(
        [{"level": "maintenance", "source_table": "t", "source_id": str(i), "hypervisor_hostname": host,
          "start": start, "end": end, "rejection_reason": None} for i, (host, start, end) in enumerate(windows)],
        schema={"level": pl.String, "source_table": pl.String, "source_id": pl.String,
                "hypervisor_hostname": pl.String, "start": TIME, "end": TIME, "rejection_reason": pl.String})
    return books.settled(frame, detail=pl.lit("{}"))


def test_clipping_reads_every_parent_that_reaches_into_the_children_open_ones_included():
    # Parents are cut to the children's time before their union (exporter.reconstruct.books):
    # a parent starting after every child's own end still reaches an open child (closed at the
    # snapshot), and parents touching each other outside the children's time change no piece.
    books = SpanBooks(site="s", snapshot_time=SNAPSHOT)
    children = rows(("h1", day(12), day(15)), ("h1", day(14), None), ("h2", day(3), day(4)))
    parents = rows(("h1", day(1), day(12)), ("h1", day(12), day(13)), ("h1", day(20), None),
                   ("h2", day(1), day(2)), ("h3", day(1), None))
    inside = books.clipped_into(children, parents, by=["hypervisor_hostname"])
    assert inside.select("source_id", "start", "end").rows() == [("0", day(12), day(13)), ("1", day(20), None)]
    outside = SpanBooks(site="s", snapshot_time=SNAPSHOT).clipped_into(
        children, parents, by=["hypervisor_hostname"], outside=True)
    assert outside.select("source_id", "start", "end").rows() == [
        ("0", day(13), day(15)), ("1", day(14), day(20)), ("2", day(3), day(4))]
    assert books.all_rejected().select("source_id", "rejection_reason").rows() == [("2", "outside_parent")]
