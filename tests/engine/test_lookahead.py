"""engine.lookahead against a brute-force evaluation of its definition, and hand-computed cases."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from exporter.engine.lookahead import lookahead_means

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
        got = lookahead_means(frame(rows), keys=["k"], weights=["w"], grid=grid, horizon=horizon)
        assert got.height == 2 * len(grid)
        for key, moment, value in got.iter_rows():
            assert value == pytest.approx(brute(rows, key, moment, horizon), rel=1e-12, abs=1e-12)


def test_a_booking_deleted_before_it_starts_counts_only_while_it_existed():
    # known 00:00-05:00 for [06:00, 08:00); horizon 4h: at 02:00 it covers 06:00 = 0h, at 03:00 ... by hand
    rows = [{"k": "a", "start": D + 6 * H, "end": D + 8 * H, "known_from": D, "known_until": D + 5 * H, "w": 2.0}]
    got = lookahead_means(frame(rows), keys=["k"], weights=["w"], grid=[D + h * H for h in range(9)],
                          horizon=4 * H)
    # T: overlap of [6, 8) with [T, T + 4) in hours, × 2 / 4, while known (T < 5)
    assert got["w"].to_list() == [0.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_no_grid_or_no_windows_give_empty_or_zero():
    empty = frame([])
    assert lookahead_means(empty, keys=["k"], weights=["w"], grid=[], horizon=H).height == 0
    assert lookahead_means(empty, keys=["k"], weights=["w"], grid=[D], horizon=H).height == 0
