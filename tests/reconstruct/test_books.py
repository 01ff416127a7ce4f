"""SpanBooks' trimming stages, called directly."""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.reconstruct.books import SpanBooks, _one_row_per, trimmed_hours

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


def test_keeping_the_outside_loses_a_whole_row_and_a_part_for_the_same_reason():
    # h1's child is partly under its parent (1 day clipped), h2's wholly (rejected): both duplicate_entity
    books = SpanBooks(site="s", snapshot_time=SNAPSHOT)
    children = rows(("h1", day(2), day(5)), ("h2", day(3), day(4)))
    parents = rows(("h1", day(1), day(3)), ("h2", day(1), day(6)))
    kept = books.clipped_into(children, parents, by=["hypervisor_hostname"], outside=True)
    assert kept.select("source_id", "start", "end").rows() == [("0", day(3), day(5))]
    assert books.all_rejected().select("source_id", "rejection_reason").rows() == [("1", "duplicate_entity")]
    assert books.all_clipped().select("reason", "hours").rows() == [("duplicate_entity", 24.0)]


def instances(*windows: tuple) -> pl.DataFrame:
    """entity, start, end rows as the occupied level's settled spans."""
    frame = pl.DataFrame(
        [{"level": "occupied", "source_table": "t", "source_id": str(i), "entity_id": entity, "start": start,
          "end": end, "rejection_reason": None} for i, (entity, start, end) in enumerate(windows)],
        schema={"level": pl.String, "source_table": pl.String, "source_id": pl.String, "entity_id": pl.String,
                "start": TIME, "end": TIME, "rejection_reason": pl.String})
    return SpanBooks(site="s", snapshot_time=SNAPSHOT).settled(frame, detail=pl.lit("{}"))


def placements(*segments: tuple) -> pl.DataFrame:
    return pl.DataFrame([{"entity_id": e, "start": s, "end": t, "hypervisor_hostname": h} for e, s, t, h in segments],
                        schema={"entity_id": pl.String, "start": TIME, "end": TIME, "hypervisor_hostname": pl.String})


def test_splitting_by_one_parent_per_key_drops_the_empty_ones_and_keeps_open_ends():
    # One parent per key skips first_wins' sort (books.split_into); an empty parent, or one with no
    # start, still holds no time (as first_wins has it).
    children = instances(("e1", day(1), day(10)), ("e2", day(2), None), ("e3", day(3), day(4)),
                         ("e4", day(1), day(9)))
    one_each = placements(("e3", day(3), day(3), "h3"), ("e1", day(5), day(8), "h1"), ("e2", day(1), None, "h2"),
                          ("e4", None, day(5), "h4"))
    books = SpanBooks(site="s", snapshot_time=SNAPSHOT)
    pieces = books.split_into(children, one_each, by=["entity_id"], take=["hypervisor_hostname"])
    assert pieces.select("source_id", "start", "end", "hypervisor_hostname").rows() == [
        ("0", day(5), day(8), "h1"), ("1", day(2), None, "h2")]
    assert books.all_rejected().select("source_id", "rejection_reason").rows() == [
        ("2", "outside_parent"), ("3", "outside_parent")]
    # A second parent of e1 overlapping the first: the earlier one keeps the overlap.
    overlapping = pl.concat([one_each, placements(("e1", day(6), day(9), "h9"))])
    pieces = SpanBooks(site="s", snapshot_time=SNAPSHOT).split_into(
        children, overlapping, by=["entity_id"], take=["hypervisor_hostname"])
    assert pieces.select("source_id", "start", "end", "hypervisor_hostname").rows() == [
        ("0", day(5), day(8), "h1"), ("0", day(8), day(9), "h9"), ("1", day(2), None, "h2")]


def test_clipping_on_two_keys_matches_both_and_a_null_key_finds_no_parent():
    # clipped_into numbers each (reservation, host) pair once and clips on that number.
    frame = pl.DataFrame(
        [{"level": "occupied", "source_table": "t", "source_id": str(i), "reservation_id": r,
          "hypervisor_hostname": h, "start": s, "end": e, "rejection_reason": None}
         for i, (r, h, s, e) in enumerate([("r1", "h1", day(1), day(10)), ("r1", "h2", day(1), day(10)),
                                           (None, "h1", day(1), day(10)), ("r2", "h1", day(1), None)])],
        schema={"level": pl.String, "source_table": pl.String, "source_id": pl.String, "reservation_id": pl.String,
                "hypervisor_hostname": pl.String, "start": TIME, "end": TIME, "rejection_reason": pl.String})
    books = SpanBooks(site="s", snapshot_time=SNAPSHOT)
    children = books.settled(frame, detail=pl.lit("{}"))
    parents = pl.DataFrame({"reservation_id": ["r1", "r2", None], "hypervisor_hostname": ["h1", "h1", "h1"],
                            "start": [day(2), day(5), day(1)], "end": [day(4), None, day(30)]},
                           schema={"reservation_id": pl.String, "hypervisor_hostname": pl.String,
                                   "start": TIME, "end": TIME})
    inside = books.clipped_into(children, parents, by=["reservation_id", "hypervisor_hostname"], reason="orphan")
    assert inside.select("source_id", "start", "end").rows() == [("0", day(2), day(4)), ("3", day(5), None)]
    assert books.all_rejected().select("source_id", "rejection_reason").rows() == [
        ("1", "orphan"), ("2", "orphan")]


def test_trimmed_hours_per_level_table_and_year_of_the_raw_start():
    # one frame of a single level and table, one of two: each trim lands on its own level, table and year
    def frame(*spans: tuple) -> pl.DataFrame:
        return pl.DataFrame([{"level": level, "source_table": table, "original_start": start, "start": start,
                              "end": end} for level, table, start, end in spans],
                            schema={"level": pl.String, "source_table": pl.String, "original_start": TIME,
                                    "start": TIME, "end": TIME})
    before = frame(("stopped", "t", dt.datetime(2022, 12, 31), dt.datetime(2023, 1, 1, 6)),
                   ("stopped", "t", day(1), day(2)))
    after = frame(("stopped", "t", dt.datetime(2022, 12, 31), dt.datetime(2022, 12, 31, 20)),
                  ("stopped", "t", day(1), day(1, 21)))
    assert sorted(trimmed_hours(before, after, reason="r", snapshot_time=SNAPSHOT).rows()) == [
        ("stopped", "t", "r", 2022, 10.0), ("stopped", "t", "r", 2023, 3.0)]
    mixed = pl.concat([before, frame(("occupied", "u", day(1), None))])
    assert sorted(trimmed_hours(mixed, pl.concat([after, frame(("occupied", "u", day(1), day(30)))]),
                                reason="r", snapshot_time=SNAPSHOT).rows()) == [
        ("occupied", "u", "r", 2023, 48.0), ("stopped", "t", "r", 2022, 10.0), ("stopped", "t", "r", 2023, 3.0)]
    assert trimmed_hours(before.clear(), after.clear(), reason="r", snapshot_time=SNAPSHOT).height == 0


def test_one_row_per_key_counts_two_null_keys_as_one_value():
    frame = pl.DataFrame({"a": ["x", "y", None], "b": ["p", "p", "p"]})
    assert _one_row_per(frame, ["a"]) and not _one_row_per(frame, ["b"]) and _one_row_per(frame, ["a", "b"])
    twice_null = pl.DataFrame({"a": ["x", None, None], "b": ["p", "q", "q"]})
    assert not _one_row_per(twice_null, ["a"]) and not _one_row_per(twice_null, ["a", "b"])
    assert _one_row_per(twice_null.head(2), ["a"])
