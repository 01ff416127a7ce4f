"""Runs of equal consecutive values in an array of keys (rows grouped or sorted by key)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of equal consecutive ``keys`` starts, and where it ends (exclusive); none for no keys."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return starts, np.r_[starts[1:], len(keys)]


def runs_by_value(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The :func:`runs` of ``keys`` ordered by value, ascending (each value's runs in row order):
    their starts, their ends, and ``bounds``: the i-th value's runs are [bounds[i], bounds[i + 1])."""
    starts, ends = runs(keys)
    order = np.argsort(keys[starts], kind="stable")
    starts, ends = starts[order], ends[order]
    firsts, _ = runs(keys[starts])
    return starts, ends, np.r_[firsts, len(starts)]


def running_sums(terms: np.ndarray, starts: Sequence[int], ends: Sequence[int]) -> np.ndarray:
    """``terms`` replaced (in place, and returned) by their running sums within each run [start,
    end), as polars' cum_sum (2.1.0) adds them: from 0.0, so a run's leading -0.0 sums to 0.0
    (numpy's cumsum keeps it); a later -0.0 adds nothing then, as no partial sum is -0.0."""
    for begin, end in zip(starts, ends):
        part = terms[begin:end]
        part[:1] += 0.0
        np.cumsum(part, out=part)
    return terms
