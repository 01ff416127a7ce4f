"""Time-weighted resampling on hand-built frames.

Semantics: the value at grid point t is the exact mean of the step function over [t, t+step),
not a sample at t; every key gets every grid point; a level set before the grid starts is in
effect from the first cell.
"""

from __future__ import annotations

import random
import struct
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from exporter.engine.resample import (
    _cell_means,
    _level_fill,
    _sums_by_pos,
    dense_grid_from_deltas,
    grid_end,
    grid_size,
)
from exporter.engine.sweepline import signed_changes, sums_by_sorted_key

HOUR = timedelta(hours=1)
T0 = datetime(2020, 1, 1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def grid_of(keys, starts, ends, values, *, hours=3) -> list[tuple]:
    spans = pl.LazyFrame(
        {"k": keys, "start": starts, "end": ends, "v": values},
        schema_overrides={"start": pl.Datetime("us"), "end": pl.Datetime("us"), "v": pl.Float64},
    )
    deltas = signed_changes(spans, keys=["k"], values=["v"], open_end=at(100))
    grid = dense_grid_from_deltas(deltas, keys=["k"], values=["v"], start=T0, end=at(hours), step=HOUR)
    return [tuple(r) for r in grid.long().rows()]


def test_mean_over_partial_cell_is_time_weighted():
    # present for the second half of hour 0 and all of hour 1
    assert grid_of(["a"], [at(0.5)], [at(2)], [1.0]) == [
        ("a", at(0), 0.5), ("a", at(1), 1.0), ("a", at(2), 0.0)
    ]


def test_short_span_inside_one_cell_counts_its_fraction_not_a_point_sample():
    # 15 minutes of 4 units inside hour 0: a point sample at 00:00 would say 0
    assert grid_of(["a"], [at(10 / 60)], [at(25 / 60)], [4.0], hours=1) == [("a", at(0), 1.0)]


def test_span_starting_before_the_grid_is_fully_in_effect_from_the_first_cell():
    assert grid_of(["a"], [at(-5)], [at(1.25)], [8.0], hours=2) == [("a", at(0), 8.0), ("a", at(1), 2.0)]


def test_span_after_the_grid_contributes_nothing_but_its_key_still_gets_zeros():
    assert grid_of(["a"], [at(5)], [at(6)], [1.0], hours=2) == [("a", at(0), 0.0), ("a", at(1), 0.0)]


def test_every_key_gets_every_grid_point():
    got = grid_of(["a", "b"], [at(0), at(1)], [at(1), at(2)], [1.0, 2.0], hours=2)
    assert got == [("a", at(0), 1.0), ("a", at(1), 0.0), ("b", at(0), 0.0), ("b", at(1), 2.0)]


def test_grid_covers_a_last_partial_window_with_a_whole_cell():
    assert grid_size(start=T0, end=at(2.5), step=HOUR) == 3
    assert grid_end(start=T0, end=at(2.5), step=HOUR) == at(3)
    assert grid_size(start=T0, end=T0, step=HOUR) == 0


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_cell_means_are_the_level_before_plus_the_part_to_the_bit():
    """Each cell's mean is (0.0 + the earlier cells' ``full``, added one cell after another) +
    the cell's ``part``, bit for bit, signed zeros included:
    sums of 0.0 and -0.0, a key whose first change is -0.0, a key with no change, a change in
    a key's last cell."""
    rng = random.Random(7)
    keys, cells = 5, 12
    weights = {1 * cells + 2: (-0.0, -0.0), 1 * cells + 5: (0.0, -0.0), 3 * cells + 11: (2.5, 1.25)}
    for pos in rng.sample([p for p in range(keys * cells) if p // cells in (0, 2, 4)], 25):
        weights[pos] = tuple(rng.choice([0.0, -0.0, rng.uniform(-5, 5), rng.uniform(-5, 5) * 1e-9]) for _ in "fp")
    frame = pl.DataFrame([(pos, full, part) for pos, (full, part) in sorted(weights.items())],
                         schema={"__pos": pl.Int64, "__full_v": pl.Float64, "__part_v": pl.Float64}, orient="row")
    fill = _level_fill(frame["__pos"].to_numpy(), size=keys * cells, n=cells)
    got = _cell_means(frame, "v", size=keys * cells, n=cells, fill=fill).to_list()
    for key in range(keys):
        level = 0.0
        for cell in range(cells):
            full, part = weights.get(key * cells + cell, (0.0, 0.0))
            assert _bits(got[key * cells + cell]) == _bits(level + part), (key, cell)
            level += full  # a quiet cell's 0.0 changes no bit: the level is never -0.0


def test_sums_by_pos_are_sums_by_sorted_key_to_the_bit():
    # positions with 1, 5, 130 and 300 terms, rows shuffled; magnitudes from 1e-9 to 1e12 and ±0.0,
    # so the order of the adding shows in the last bits; small positions (packed into one integer with
    # the row number) and ones too wide for that (a stable argsort)
    rng = random.Random(7)
    counts = [1, 5, 130, 300] * 3
    for scale in (1, 2**55):
        pos = [p * scale for p, count in enumerate(counts) for _ in range(count)]
        rng.shuffle(pos)

        def term() -> float:
            if rng.random() < 0.1:
                return rng.choice([0.0, -0.0])
            return rng.choice([-1.0, 1.0]) * rng.random() * 10.0 ** rng.randint(-9, 12)

        a, b = [term() for _ in pos], [term() for _ in pos]
        # and positions whose only terms are -0.0: one and five of them
        zeros = [len(counts) * scale] + [(len(counts) + 1) * scale] * 5
        terms = pl.DataFrame({"__pos": pos + zeros, "a": a + [-0.0] * 6, "b": b + [-0.0] * 6},
                             schema={"__pos": pl.Int64, "a": pl.Float64, "b": pl.Float64}).sample(
            fraction=1.0, shuffle=True, seed=scale % 1000)
        got = _sums_by_pos(terms, ["a", "b"])
        want = sums_by_sorted_key(terms.lazy(), by=["__pos"], values=["a", "b"]).collect()
        assert got.get_column("__pos").to_list() == want.get_column("__pos").to_list()
        for value in ("a", "b"):
            assert np.array_equal(got.get_column(value).to_numpy().view(np.int64),
                                  want.get_column(value).to_numpy().view(np.int64))


def test_a_block_of_keys_is_their_rows_of_the_whole_grid_to_the_bit():
    """``DenseGrid.blocks`` sums each key's levels within a block's keys only: every block gives
    the same bits as its keys' rows of ``values`` (keys without changes, changes before the grid,
    in its last cell and after it, two values, signed zeros)."""
    rng = random.Random(11)
    for _ in range(30):
        keys, hours = rng.randint(1, 6), rng.randint(1, 9)
        rows = [(f"k{rng.randrange(keys)}", at(rng.uniform(-3, hours + 2)), rng.choice([0.0, -0.0, rng.uniform(-5, 5)]),
                 rng.uniform(-1, 1) * 10 ** rng.randint(-9, 3)) for _ in range(rng.randint(0, 25))]
        rows += [(f"k{k}", at(-1), 0.0, 0.0) for k in range(keys)]  # every key present, as the timeline's anchors
        deltas = pl.LazyFrame(rows, schema={"k": pl.String, "time": pl.Datetime("us"), "v": pl.Float64,
                                            "w": pl.Float64}, orient="row")
        grid = dense_grid_from_deltas(deltas, keys=["k"], values=["v", "w"], start=T0, end=at(hours), step=HOUR)
        count = rng.randint(1, keys)
        blocks = list(grid.blocks(count))
        assert len(blocks) == -(-keys // count)
        for k, block in enumerate(blocks):
            whole = grid.values.slice(k * count * grid.cells, count * grid.cells)
            for name in ("v", "w"):
                assert block[name].to_numpy().tobytes() == whole[name].to_numpy().tobytes(), (k, count)
