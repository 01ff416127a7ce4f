"""Runs of equal consecutive values in an array of keys (rows grouped or sorted by key)."""

from __future__ import annotations

import numpy as np


def runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of equal consecutive ``keys`` starts, and where it ends (exclusive); none for no keys."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return starts, np.r_[starts[1:], len(keys)]
