"""Runs of equal keys, and the same runs ordered by value: on hand-made keys."""

from __future__ import annotations

import numpy as np

from exporter.engine.runs import runs, runs_by_value


def test_runs_are_the_stretches_of_equal_consecutive_keys():
    starts, ends = runs(np.array([2, 2, 0, 1, 0, 0, 2, 1]))
    assert list(zip(starts.tolist(), ends.tolist())) == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7), (7, 8)]


def test_runs_by_value_put_each_values_runs_together_in_row_order():
    """Value 0's runs first, each value's in the order of its rows, though 2 comes first in the keys."""
    starts, ends, bounds = runs_by_value(np.array([2, 2, 0, 1, 0, 0, 2, 1]))
    assert list(zip(starts.tolist(), ends.tolist())) == [(2, 3), (4, 6), (3, 4), (7, 8), (0, 2), (6, 7)]
    assert bounds.tolist() == [0, 2, 4, 6]


def test_no_keys_have_no_runs():
    starts, ends, bounds = runs_by_value(np.zeros(0, dtype=np.int64))
    assert starts.tolist() == ends.tolist() == [] and bounds.tolist() == [0]
