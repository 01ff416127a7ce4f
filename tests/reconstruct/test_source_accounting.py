"""The per-source row counts of audit.source_accounting against plain-Python sets on random frames:
used, rejected and both, with null ids, repeated ids and partly excluded (manual_rule) rows."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.reconstruct.audit import source_accounting

T0 = datetime(2020, 1, 1)
KEY = st.tuples(st.sampled_from(["occupied", "total"]), st.sampled_from(["nova.instances", "rules"]))
ID = st.one_of(st.none(), st.sampled_from(["1", "2", "3", "4"]))
REASON = st.sampled_from(["orphan", "manual_rule"])


def _spans(rows: list) -> pl.DataFrame:
    return pl.DataFrame([(level, table, sid, T0, T0) for (level, table), sid in rows], orient="row",
                        schema={"level": pl.String, "source_table": pl.String, "source_id": pl.String,
                                "start": pl.Datetime("us"), "end": pl.Datetime("us")})


def _rejected(rows: list) -> pl.DataFrame:
    return pl.DataFrame([(level, table, sid, reason, 1.0) for ((level, table), sid), reason in rows], orient="row",
                        schema={"level": pl.String, "source_table": pl.String, "source_id": pl.String,
                                "rejection_reason": pl.String, "hours": pl.Float64})


def _expected(spans: list, rejected: list) -> dict:
    """(level, table) -> (rows used, rows rejected, rows both): all null ids of a (level, table)
    count as one row, and a null id is never counted as both used and rejected."""
    counts = {}
    for key in {k for k, _ in spans} | {k for (k, _), _ in rejected}:
        used = {sid for k, sid in spans if k == key}
        whole = {sid for (k, sid), reason in rejected if k == key
                 and (reason != "manual_rule" or sid is None or sid not in used)}
        cut_whole = {sid for (k, sid), reason in rejected if k == key and reason != "manual_rule"}
        counts[key] = (len(used), len(whole), len((used & cut_whole) - {None}))
    return counts


@given(st.lists(st.tuples(KEY, ID), max_size=12), st.lists(st.tuples(st.tuples(KEY, ID), REASON), max_size=12))
@settings(max_examples=200, deadline=None)
def test_rows_used_rejected_and_both_match_sets(spans: list, rejected: list) -> None:
    keys = {k for k, _ in spans} | {k for (k, _), _ in rejected}
    inputs = pl.DataFrame([(level, table, 0, 0.0) for level, table in keys], orient="row",
                          schema={"level": pl.String, "source_table": pl.String, "rows_in": pl.Int64,
                                  "hours_in": pl.Float64})
    clipped = pl.DataFrame(schema={"level": pl.String, "source_table": pl.String, "hours": pl.Float64})
    table = source_accounting(inputs, _spans(spans), _rejected(rejected), clipped, snapshot_time=T0)
    got = {(row["level"], row["source_table"]): (row["rows_used"], row["rows_rejected"], row["rows_both"])
           for row in table.to_dicts()}
    assert got == _expected(spans, rejected)
