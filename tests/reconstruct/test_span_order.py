"""The spans stage's output order: level, host, start, source table, source id, nulls last."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.reconstruct.span_stage import _in_span_order

T = dt.datetime(2024, 1, 1)


def test_the_spans_are_sorted_as_their_text_sorts():
    # level, host and source table compare as Enums of their sorted values: the order must be the
    # text's (byte order: "h10" before "h9", upper case before lower), nulls last
    spans = pl.DataFrame({
        "level": ["total", "occupied", "total", "occupied", "committed", "total"],
        "hypervisor_hostname": ["h9", "h10", None, "h9", "Z1", "h10"],
        "start": [T, T, T, T + dt.timedelta(hours=1), T, T],
        "source_table": ["nova.instances", "blazar.leases", "nova.compute_nodes", "nova.instances", "a.b", "a.b"],
        "source_id": ["3", "2", "1", "9", "8", "7"],
    })
    want = spans.sort("level", "hypervisor_hostname", "start", "source_table", "source_id", nulls_last=True)
    assert _in_span_order(spans).rows() == want.rows()
    assert _in_span_order(spans.clear()).rows() == []


def test_every_key_decides_where_the_ones_before_it_tie():
    # many ties on the first keys, nulls in each: every key's order (and nulls last) must show through
    rows = 3 * 4 * 5 * 3 * 4
    spans = pl.DataFrame({
        "level": [["total", "occupied", None][i % 3] for i in range(rows)],
        "hypervisor_hostname": [["h2", "h10", None, "h1"][i // 3 % 4] for i in range(rows)],
        "start": [None if i // 12 % 5 == 4 else T - dt.timedelta(days=i // 12 % 5) for i in range(rows)],
        "source_table": [["b.t", "a.t", None][i // 60 % 3] for i in range(rows)],
        "source_id": [[None, "10", "9", "x"][(i * 7) % 4] for i in range(rows)],
        "row": range(rows),
    })
    want = spans.sort("level", "hypervisor_hostname", "start", "source_table", "source_id", nulls_last=True,
                      maintain_order=True)
    assert _in_span_order(spans.reverse()).drop("row").rows() == want.drop("row").rows()


def _maybe(values: list) -> st.SearchStrategy:
    return st.one_of(st.none(), st.sampled_from(values))


@given(st.lists(st.tuples(_maybe(["total", "occupied"]), _maybe(["h2", "h10", "H1"]),
                          _maybe([T, T - dt.timedelta(days=1), T + dt.timedelta(hours=1)]),
                          _maybe(["b.t", "a.t"]), _maybe(["10", "9", "x", ""])), max_size=40))
@settings(max_examples=200, deadline=None)
def test_the_order_is_polars_sort_of_the_five_keys_on_random_spans(rows: list) -> None:
    # few values per key, nulls in each: every key ties often, so each one decides somewhere
    spans = pl.DataFrame(rows, orient="row", schema={
        "level": pl.String, "hypervisor_hostname": pl.String, "start": pl.Datetime("us"), "source_table": pl.String,
        "source_id": pl.String})
    want = spans.sort("level", "hypervisor_hostname", "start", "source_table", "source_id", nulls_last=True)
    assert _in_span_order(spans).rows() == want.rows()
