"""engine.fixed_point against polars' own exact_sum (the values it must reproduce)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from exporter.engine.fixed_point import EXACT, exact_sums
from exporter.engine.sweepline import exact_sum


def polars_sums(columns: list[np.ndarray]) -> pl.Series:
    return pl.concat([pl.Series("x", c, dtype=pl.Float64).to_frame().select(exact_sum(pl.col("x")))
                      for c in columns]).to_series()


def ties(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Floats whose x × 10¹² is exactly half way between two integers (half to even decides)."""
    x = (np.floor(rng.random(n) * scale) + 0.5) / 1e12
    return x[x * 1e12 == np.floor(x * 1e12) + 0.5]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sums_are_polars_exact_sums(seed):
    rng = np.random.default_rng(seed)
    n = 50_000
    columns = [
        rng.normal(0, 3, n),  # small values: int64 terms
        rng.normal(0, 1e13, n),  # memory-sized values (bytes): terms past 2**62, summed in parts
        np.concatenate([rng.normal(0, 1e13, n), -rng.normal(0, 1e13, n)]),
        ties(rng, n, 2.0**40),
        -ties(rng, n, 2.0**40),
        np.concatenate([rng.integers(-9, 9, n) * 0.5 * 1e-12, [0.0, -0.0, 5e-324, 1e-13]]),  # ties at 0
        np.full(3 * n, 2.0**80 / 1e12),  # one term near 2**80, many times
        np.array([]),
    ]
    got = exact_sums(columns)
    assert got is not None and got.dtype == EXACT
    assert got.to_list() == polars_sums(columns).to_list()


def test_values_polars_must_decide_on_are_left_to_it():
    assert exact_sums([np.array([1.0, np.nan])]) is None
    assert exact_sums([np.array([1.0, np.inf])]) is None
    assert exact_sums([np.array([1.0]), np.array([1e27])]) is None  # a term past Decimal(38, 12)
    assert exact_sums([np.full(20, 9e25)]) is None  # a sum past it
