"""Exact fixed-point sums of float arrays in numpy: the values of sweepline.exact_sum.

No domain knowledge. ``exact_sum`` casts each float to Decimal(38, 12), which polars does as
round_half_even(x × 10¹²) computed in Float64, and adds the integers exactly (i128). Here the same
rounded terms, integers held in float64, are split into parts that int64 sums hold exactly, and
the parts' sums are put together in Python integers. Measured on the 500 x 10 timeline's 45 leaf
columns × 9 groups: 0.39-0.44 s CPU against 0.83-0.92 s for polars' cast and sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import polars as pl

from exporter.engine.sweepline import EXACT  # the type of exact_sum's sums

_SCALE = 10.0 ** EXACT.scale
_LIMIT = 10**EXACT.precision  # a (scaled) term or sum this large does not fit the type


def exact_sums(columns: Sequence[np.ndarray]) -> pl.Series | None:
    """``exact_sum`` of each float array, as one Series of its type; None where a value is not
    finite, a term or a sum does not fit the type, or a column is longer than 2**31 (leave those
    to polars, which decides what happens then)."""
    sums = []
    for values in columns:
        total = _fixed_point_sum(values)
        if total is None:
            return None
        sums.append(Decimal(f"{total}E-{EXACT.scale}"))  # exact: a Decimal made from text is not rounded
    return pl.Series(sums, dtype=EXACT)


def _fixed_point_sum(values: np.ndarray) -> int | None:
    """Σ round_half_even(x × 10^scale) over ``values``, exactly (see :func:`exact_sums`)."""
    if len(values) >= 2**31:
        return None
    if not len(values):
        return 0
    terms = values * _SCALE
    np.rint(terms, out=terms)  # half to even, as polars' cast
    top = max(-terms.min(), terms.max())
    if not top < _LIMIT:  # also NaN
        return None
    if top < 2.0**62:  # exact int64 terms; 31-bit halves: sums of 2**31 of them fit int64
        whole = terms.astype(np.int64)
        total = (int((whole >> 31).sum()) << 31) + int((whole & (2**31 - 1)).sum())
    else:  # parts of at most 30 bits from the top, each exact in float64 and int64
        total = 0
        for shift in range(30 * (int(top).bit_length() // 30), 0, -30):
            part = np.floor(terms * 2.0**-shift)
            terms -= part * 2.0**shift  # [0, 2**shift): exact, an integer of at most 53 significant bits
            total += int(part.astype(np.int64).sum()) << shift
        total += int(terms.astype(np.int64).sum())
    return total if abs(total) < _LIMIT else None
