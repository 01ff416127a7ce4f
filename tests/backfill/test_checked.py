"""The timeline check's fast placement (exporter.backfill.checked._placed_samples) against the
general join + sort + dense check: the same samples on every dense grid, and no answer (so the
general path names the fault) on anything else, also when faults balance the row count."""

from __future__ import annotations

import contextlib
import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from exporter.backfill import checked
from exporter.backfill.openmetrics import render_openmetrics
from exporter.engine import chunks
from exporter.errors import TimelineError
from tests.backfill.timelines import synthetic_timeline

T0 = dt.datetime(2024, 1, 1)


def _two_sites(hours_uc: int, hours_tacc: int) -> pl.DataFrame:
    """Two sites with grids of different length and start: per-series offsets differ by site."""
    return pl.concat([synthetic_timeline(start=T0, hours=hours_uc, node_types=("a", "b"), resources=("nodes", "gpus")),
                      synthetic_timeline(start=T0 + dt.timedelta(hours=2), hours=hours_tacc, node_types=("a",),
                                         resources=("vcpus",), site="tacc")])


def _general(frame: pl.DataFrame) -> checked.CheckedTimeline:
    """checked_timeline with the fast placement switched off."""
    placed = checked._placed_samples
    checked._placed_samples = lambda *args: None
    try:
        return checked.checked_timeline(frame)
    finally:
        checked._placed_samples = placed


@settings(max_examples=40, deadline=None)
@given(hours_uc=st.integers(2, 6), hours_tacc=st.integers(2, 6), seed=st.integers(0, 2**32 - 1),
       drop=st.integers(0, 2), repeat=st.integers(0, 2), cuts=st.lists(st.integers(0, 60), max_size=3))
def test_fast_placement_equals_the_general_path_or_declines(hours_uc, hours_tacc, seed, drop, repeat, cuts):
    dense = _two_sites(hours_uc, hours_tacc)
    frame = pl.concat([dense.sample(fraction=1.0, shuffle=True, seed=seed).slice(drop),
                       dense.sample(n=repeat, seed=seed)]).sample(fraction=1.0, shuffle=True, seed=seed + 1)
    # in chunks (a parquet file's columns come so), placed in blocks of 3 rows: a block ends inside a chunk
    bounds = sorted({0, frame.height, *(min(cut, frame.height) for cut in cuts)})
    frame = pl.concat([frame.slice(a, b - a) for a, b in zip(bounds, bounds[1:])], rechunk=False)
    with _blocks_of(3):
        _placement_equals_the_general_path_or_declines(frame)


@contextlib.contextmanager
def _blocks_of(rows: int):
    kept, chunks.BLOCK_ROWS = chunks.BLOCK_ROWS, rows  # not monkeypatch: hypothesis runs many examples a call
    try:
        yield
    finally:
        chunks.BLOCK_ROWS = kept


def _placement_equals_the_general_path_or_declines(frame: pl.DataFrame) -> None:
    try:
        expected = _general(frame)
    except TimelineError as error:
        with pytest.raises(TimelineError) as caught:
            checked.checked_timeline(frame)
        assert str(caught.value) == str(error)
        return
    got = checked.checked_timeline(frame)
    assert got.samples.equals(expected.samples) and got.keys.equals(expected.keys)
    assert (got.starts, got.ends, got.step_seconds) == (expected.starts, expected.ends, expected.step_seconds)


def test_a_duplicate_beside_a_hole_is_still_named_a_duplicate():
    """As many rows as grid places, but one row twice and one missing: not a dense grid."""
    dense = synthetic_timeline(start=T0, hours=4, node_types=("a",), resources=("nodes",))
    frame = pl.concat([dense.slice(1), dense.slice(5, 1)])
    assert frame.height == dense.height
    assert checked._placed_samples(frame, checked._series_codes(frame),
                                   checked._ranked_keys(frame, checked._series_codes(frame)),
                                   *_grid_and_step(frame)) is None
    with pytest.raises(TimelineError, match="sharing a"):
        render_openmetrics(frame, job="j", instance="i")


def _grid_and_step(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    grid = (frame.group_by(pl.col("site").cast(pl.String))
            .agg(start=pl.col("timestamp").min(), points=pl.col("timestamp").n_unique()))
    return grid, 3600


@pytest.mark.parametrize("hours, message", [
    ({"uc": [0, 1, 3]}, "timeline grid is irregular for site 'uc': spacing varies between 3600s and 7200s"),
    ({"uc": [0, 1, 2], "tacc": [0, 2, 4]}, "timeline sites use different steps (3600s, 7200s)"),
    ({"uc": [5], "tacc": [5]}, "timeline has a single timestamp per site: cannot infer its step (pass step_seconds)"),
])
def test_the_grid_check_names_each_sites_fault(hours, message):
    """Each site's own timestamps make its grid (also where the other site shares some of them)."""
    frame = pl.concat([synthetic_timeline(start=T0, hours=1, node_types=("a",), resources=("nodes",), site=site)
                       .with_columns(timestamp=pl.lit(T0 + dt.timedelta(hours=h)))
                       for site, times in hours.items() for h in times])
    with pytest.raises(TimelineError) as caught:
        checked.checked_timeline(frame)
    assert str(caught.value) == message


def test_sites_sharing_timestamps_each_get_their_own_grid():
    frame = pl.concat([synthetic_timeline(start=T0, hours=5, node_types=("a",), resources=("nodes",), site="uc"),
                       synthetic_timeline(start=T0 + dt.timedelta(hours=2), hours=6, node_types=("a",),
                                          resources=("nodes",), site="tacc")])
    got = checked.checked_timeline(frame)
    assert got.starts == {"tacc": T0 + dt.timedelta(hours=2), "uc": T0}
    assert got.ends == {"tacc": T0 + dt.timedelta(hours=8), "uc": T0 + dt.timedelta(hours=5)}


def test_the_ranked_keys_come_in_rank_order():
    """history.first_window reads the keys' families by row as by rank."""
    shuffled = _two_sites(5, 3).sample(fraction=1.0, shuffle=True, seed=4)
    keys = checked.prechecked_timeline(shuffled).keys
    assert keys["rank"].to_list() == list(range(keys.height))


def test_series_codes_past_the_packed_width_name_the_same_series(monkeypatch):
    # The dense-rank fallback (a category cache too large to pack) groups the rows as the packed codes do.
    frame = _two_sites(30, 20).with_columns(pl.col(checked.SERIES_KEYS).cast(pl.Categorical))
    packed = checked._series_codes(frame)
    monkeypatch.setattr(checked, "PACKED_BITS", 0)
    ranked = checked._series_codes(frame)
    pairs = pl.DataFrame({"packed": packed, "ranked": ranked}).unique()
    assert pairs.height == packed.n_unique() == ranked.n_unique() == frame.select(checked.SERIES_KEYS).n_unique() > 1

