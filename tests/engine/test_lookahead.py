"""engine.lookahead against a brute-force evaluation of its definition, and hand-computed cases."""

from __future__ import annotations

import datetime as dt
import logging
import random
import warnings

import numpy as np
import polars as pl
import pytest

from exporter.engine import lookahead
from exporter.engine.lookahead import lookahead_means_each

D = dt.datetime(2024, 1, 1)
H = dt.timedelta(hours=1)


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"k": pl.String, "start": pl.Datetime("us"), "end": pl.Datetime("us"),
                                      "known_from": pl.Datetime("us"), "known_until": pl.Datetime("us"),
                                      "w": pl.Float64})


def brute(rows: list[dict], key: str, moment: dt.datetime, horizon: dt.timedelta) -> float:
    total = 0.0
    for r in rows:
        known = r["known_from"] <= moment and (r["known_until"] is None or moment < r["known_until"])
        overlap = (min(r["end"], moment + horizon) - max(r["start"], moment)).total_seconds()
        if r["k"] == key and known and overlap > 0:
            total += r["w"] * overlap
    return total / horizon.total_seconds()


@pytest.mark.parametrize("seed, aligned", [(1, False), (2, True), (3, True)])
def test_random_windows_equal_the_brute_force_mean(seed, aligned):
    rng = random.Random(seed)
    snap = 3600 if aligned else 1  # aligned: many events fall exactly on grid times (ties)
    rows = []
    for _ in range(200):
        known_from = D + dt.timedelta(seconds=rng.randrange(0, 86400 * 20) // snap * snap)
        start = known_from + dt.timedelta(seconds=rng.randrange(-86400, 86400 * 5) // snap * snap)
        end = start + dt.timedelta(seconds=rng.randrange(1, 86400 * 4) // snap * snap + snap)
        until = None if rng.random() < 0.4 else known_from + dt.timedelta(seconds=rng.randrange(snap, 86400 * 9))
        rows.append({"k": rng.choice("ab"), "start": start, "end": end, "known_from": known_from,
                     "known_until": until, "w": rng.choice([1.0, 0.25, 3.0])})
    grid = [D + h * H for h in range(24 * 30)]
    for horizon in (dt.timedelta(days=1), dt.timedelta(days=7)):
        got, = lookahead_means_each(frame(rows), keys=["k"], weights=["w"], grid=grid, horizons=[horizon])
        assert got.height == 2 * len(grid)
        for key, moment, value in got.iter_rows():
            assert value == pytest.approx(brute(rows, key, moment, horizon), rel=1e-12, abs=1e-12)


def test_a_booking_deleted_before_it_starts_counts_only_while_it_existed():
    # known 00:00-05:00 for [06:00, 08:00); horizon 4h: at 02:00 it covers 06:00 = 0h, at 03:00 ... by hand
    rows = [{"k": "a", "start": D + 6 * H, "end": D + 8 * H, "known_from": D, "known_until": D + 5 * H, "w": 2.0}]
    got, = lookahead_means_each(frame(rows), keys=["k"], weights=["w"], grid=[D + h * H for h in range(9)],
                                horizons=[4 * H])
    # T: overlap of [6, 8) with [T, T + 4) in hours, × 2 / 4, while known (T < 5)
    assert got["w"].to_list() == [0.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_no_grid_or_no_windows_give_empty_or_zero():
    empty = frame([])
    assert lookahead_means_each(empty, keys=["k"], weights=["w"], grid=[], horizons=[H])[0].height == 0
    assert lookahead_means_each(empty, keys=["k"], weights=["w"], grid=[D], horizons=[H])[0].height == 0


def test_windows_known_only_after_the_grid_give_zero_means():
    # every event falls after the last grid time: the running sums are empty, the cells are not
    rows = [{"k": "a", "start": D + 30 * H, "end": D + 32 * H, "known_from": D + 20 * H, "known_until": None, "w": 2.0}]
    grid = [D + h * H for h in range(6)]
    got, = lookahead_means_each(frame(rows), keys=["k"], weights=["w"], grid=grid, horizons=[4 * H])
    assert got["w"].to_list() == [0.0] * 6
    assert not np.signbit(got["w"].to_numpy()).any()


def bits(frame: pl.DataFrame) -> list:
    """Every value of ``frame`` as it is stored (floats by their bits: -0.0 is not 0.0)."""
    return [column.to_numpy().view(np.int64).tolist() if column.dtype == pl.Float64 else column.to_list()
            for column in frame.get_columns()]


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_ranked_sums_are_the_sums_of_events_sorted_by_every_column_bit_for_bit(seed, monkeypatch):
    # many ties in time and weights, zero weights (products of -0.0), null keys, several horizons
    rng = random.Random(seed)
    rows = []
    for _ in range(300):
        known_from = D + dt.timedelta(hours=rng.randrange(0, 24 * 20))
        start = known_from + dt.timedelta(hours=rng.randrange(-24, 24 * 5))
        until = None if rng.random() < 0.3 else known_from + dt.timedelta(hours=rng.randrange(0, 24 * 9))
        rows.append({"k": rng.choice(["a", "b", None]), "start": start,
                     "end": start + dt.timedelta(hours=rng.randrange(1, 24 * 4)), "known_from": known_from,
                     "known_until": until, "w": rng.choice([0.0, 1.0, 0.1, 3.0]), "v": rng.choice([0.0, 0.3, 2.0])})
    windows = pl.DataFrame(rows, schema={**frame([]).schema, "v": pl.Float64})
    grid = [D + h * H for h in range(24 * 30)]
    horizons = [dt.timedelta(days=1), dt.timedelta(hours=7), dt.timedelta(days=30)]
    got = lookahead_means_each(windows, keys=["k"], weights=["w", "v"], grid=grid, horizons=horizons)
    monkeypatch.setattr(lookahead, "_weight_ranks", lambda *_: None)  # the path that sorts by every column
    want = lookahead_means_each(windows, keys=["k"], weights=["w", "v"], grid=grid, horizons=horizons)
    assert [bits(f) for f in got] == [bits(f) for f in want]
    one_each = [lookahead_means_each(windows, keys=["k"], weights=["w", "v"], grid=grid, horizons=[h])[0]
                for h in horizons]
    assert [bits(f) for f in one_each] == [bits(f) for f in want]


def test_the_stable_order_is_numpys_lexsort():
    rng = np.random.default_rng(7)
    columns = (rng.integers(0, 5, 5000).astype(np.uint32), rng.integers(0, 40, 5000) / 4.0,
               rng.integers(-3, 3, 5000), rng.integers(0, 70000, 5000))
    assert (lookahead._stable_order(*columns) == np.lexsort(columns[::-1])).all()
    assert len(lookahead._stable_order(np.array([], dtype=np.int64))) == 0


@pytest.mark.parametrize("per_second, spread", [(1.0, 10**9), (1.0, 20), (1e6, 10**9), (1e6, 20), (None, 10**9)])
def test_the_sorted_events_are_numpys_lexsort(per_second, spread):
    # whole seconds and whole microseconds are sorted packed: one integer each where the three fit
    # (a narrow spread of times), else ordered by two integers' 16-bit digits (a wide one;
    # neighbouring values, whose lowest bit shares a digit with the top of dv); other floats by
    # the per-column order
    rng = np.random.default_rng(8)
    n = 20000
    a = rng.integers(-spread, spread, n) / (per_second or 7.3)
    dv = rng.choice([0.0, -0.0, 3600.0, -7200.0, 1.0, 2.0**40], n) / (per_second or 1.0)
    dv[rng.random(n) < 0.3] = -0.0  # equal to 0.0: the tie goes to the rank, as the float sort does
    rows = (a[rng.integers(0, n // 4, n)], dv, rng.integers(0, 44, n))
    got, want = lookahead._sorted_events(*rows), np.lexsort(rows[::-1])
    # the same rows in the order of their values (rows equal in all three may change places)
    assert all(column.dtype == given.dtype and (column == given[want]).all() for column, given in zip(got, rows))
    assert (lookahead._whole(rows[0]) is None) == (per_second is None)


@pytest.mark.parametrize("dv_top", [255.0, 511.0])
def test_the_packed_events_never_use_the_sign_bit(dv_top):
    # a over 50 bits, rank over 5, dv over 8 (63 bits: one integer) or 9 (64: the packed integer
    # would turn negative for the later half of the times, so two integers are needed)
    rng = np.random.default_rng(9)
    n = 4000
    a = rng.integers(0, 2**50, n).astype(np.float64)
    a[:2] = (0.0, 2.0**50 - 1)
    dv = rng.choice([0.0, dv_top], n)
    rank = rng.integers(0, 32, n)
    rank[:2] = (0, 31)
    got, want = lookahead._sorted_events(a, dv, rank), np.lexsort((rank, dv, a))
    assert all((column == given[want]).all() for column, given in zip(got, (a, dv, rank)))


def test_running_sums_add_as_polars_cum_sum_from_zero():
    # polars' cum_sum starts at 0.0: a leading -0.0 sums to 0.0 (numpy's cumsum keeps it)
    terms = [-0.0, -0.0, 1.0, -1.0, -0.0, 2.5, -0.0]
    got = lookahead._running_at(np.array(terms), np.arange(len(terms)))
    assert got.view(np.int64).tolist() == pl.Series(terms).cum_sum().to_numpy().view(np.int64).tolist()


def test_an_infinite_weight_takes_the_join_and_leaves_the_other_keys_alone(monkeypatch):
    """The as-of means in numpy (_means_searched) give way to polars' join when a value is not
    finite: the same values as the path that sorts by every column (NaN where inf - inf), the
    other key's means the brute force's; and numpy's sums warn of nothing on the way."""
    rows = [{"k": "a", "start": D + 2 * H, "end": D + 6 * H, "known_from": D, "known_until": None, "w": np.inf},
            {"k": "a", "start": D + 3 * H, "end": D + 4 * H, "known_from": D + H, "known_until": D + 5 * H, "w": 1.0},
            {"k": "b", "start": D + H, "end": D + 5 * H, "known_from": D, "known_until": D + 3 * H, "w": 2.0}]
    grid = [D + h * H for h in range(8)]
    real, searched = lookahead._means_searched, []

    def recorded(*args):
        searched.append(real(*args))
        return searched[-1]

    monkeypatch.setattr(lookahead, "_means_searched", recorded)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, = lookahead_means_each(frame(rows), keys=["k"], weights=["w"], grid=grid, horizons=[2 * H])
    # each key is searched alone: key a's means are not finite (the join's), key b's are searched
    assert len(searched) == 2 and sum(means is None for means in searched) == 1
    monkeypatch.setattr(lookahead, "_weight_ranks", lambda *_: None)  # the path that sorts by every column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, = lookahead_means_each(frame(rows), keys=["k"], weights=["w"], grid=grid, horizons=[2 * H])
    assert got.select("k", "timestamp").equals(want.select("k", "timestamp"))
    assert np.array_equal(got["w"].to_numpy(), want["w"].to_numpy(), equal_nan=True)
    b = got.filter(pl.col("k") == "b")
    assert b["w"].to_list() == [brute(rows, "b", moment, 2 * H) for moment in grid]
    assert not np.isfinite(got.filter(pl.col("k") == "a")["w"].to_numpy()).all()


def whole_windows(seed: int, weights: list[float]) -> pl.DataFrame:
    """Windows in whole seconds with whole weights: ties on grid times, events before the grid, zeros."""
    rng = random.Random(seed)
    rows = []
    for _ in range(300):
        known_from = D + dt.timedelta(seconds=rng.choice([3600, 1, 60]) * rng.randrange(-3600, 24 * 20 * 60))
        start = known_from + dt.timedelta(seconds=rng.choice([3600, 1]) * rng.randrange(-3600, 24 * 5 * 60))
        until = None if rng.random() < 0.3 else known_from + dt.timedelta(seconds=rng.randrange(0, 86400 * 9))
        rows.append({"k": rng.choice(["a", "b", None]), "start": start,
                     "end": start + dt.timedelta(seconds=rng.randrange(1, 86400 * 4)), "known_from": known_from,
                     "known_until": until, "w": rng.choice(weights), "v": rng.choice([0.0, 1.0, -2.0])})
    return pl.DataFrame(rows, schema={**frame([]).schema, "v": pl.Float64})


@pytest.mark.parametrize("seed, weights, exact", [(7, [0.0, 1.0, 48.0, 196608.0], True), (8, [0.0, 3.0], True),
                                                  (9, [1.0, 2.0**45], False)])
def test_sums_of_whole_terms_in_any_order_are_the_sorted_sums_bit_for_bit(seed, weights, exact, monkeypatch, caplog):
    # 2^45 × seconds over weeks passes 2^53: those parts keep the sorted sums, and say so in the debug log
    caplog.set_level(logging.DEBUG, logger=lookahead.__name__)
    windows = whole_windows(seed, weights)
    grid = [D + h * H for h in range(24 * 30)]
    horizons = [dt.timedelta(days=1), dt.timedelta(hours=7), dt.timedelta(days=30)]
    taken = []
    summed = lookahead._exact_sums_at_times
    monkeypatch.setattr(lookahead, "_exact_sums_at_times", lambda *args: taken.append(summed(*args)) or taken[-1])
    got = lookahead_means_each(windows, keys=["k"], weights=["w", "v"], grid=grid, horizons=horizons)
    assert taken and all((sums is not None) == exact for sums in taken)
    assert any("summed sorted" in record.getMessage() for record in caplog.records) == (not exact)
    monkeypatch.setattr(lookahead, "_whole_step", lambda *_: None)  # every part sorted
    want = lookahead_means_each(windows, keys=["k"], weights=["w", "v"], grid=grid, horizons=horizons)
    assert [bits(f) for f in got] == [bits(f) for f in want]


def test_the_exact_sums_need_whole_seconds_and_a_regular_grid():
    windows = whole_windows(10, [1.0]).with_columns(known_from=pl.col("known_from").cast(pl.Float64),
                                                    start=pl.col("start").cast(pl.Float64),
                                                    end=pl.col("end").cast(pl.Float64),
                                                    known_until=pl.col("known_until").cast(pl.Float64))
    per_rank = {"w": np.array([1.0, 2.0])}
    t = np.arange(5) * 3600.0
    # microseconds since the epoch are whole, but reach past 2^50
    assert lookahead._whole_step(windows, t, [3600.0], per_rank, ["w"]) is None
    seconds = windows.with_columns(pl.col(c) / 1e6 for c in ("start", "end", "known_from", "known_until"))
    assert lookahead._whole_step(seconds, t, [3600.0], per_rank, ["w"]) == 3600
    assert lookahead._whole_step(seconds.with_columns(pl.col("end") + 0.5), t, [3600.0], per_rank, ["w"]) is None
    assert lookahead._whole_step(seconds, t, [1.5], per_rank, ["w"]) is None
    assert lookahead._whole_step(seconds, t, [3600.0], {"w": np.array([0.5])}, ["w"]) is None
    assert lookahead._whole_step(seconds, np.r_[t, 5 * 3600.0 + 1], [3600.0], per_rank, ["w"]) is None
    assert lookahead._whole_step(seconds, t, [3600.0], None, ["w"]) is None
