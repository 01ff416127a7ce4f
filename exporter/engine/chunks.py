"""A long column a block at a time, and polars' row-number dtype in numpy.

Whole-length numpy temporaries (a product, its absolute value, a cast) are fresh memory, and a
fresh page costs more than the arithmetic done on it on this kind of VM (BENCHMARKS.md "Session
15: where backfill's own CPU goes"); a block's temporaries are heap memory reused block after
block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import polars as pl

BLOCK_ROWS = 1 << 16


def row_blocks(column: pl.Series, as_numpy: Callable[[pl.Series], np.ndarray] = pl.Series.to_numpy
               ) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, block) over ``column``, chunk by chunk, each chunk in blocks of at most
    BLOCK_ROWS rows, each block ``as_numpy`` (a view where it can be; a conversion, e.g. to epoch
    seconds, makes only a block's worth)."""
    rows, first = BLOCK_ROWS, 0
    for chunk in column.get_chunks():
        for begin in range(0, chunk.len(), rows):
            yield first + begin, as_numpy(chunk.slice(begin, rows))
        first += chunk.len()


def index_dtype() -> type[np.unsignedinteger]:
    """numpy's dtype for polars' row numbers (its index type: UInt32, or UInt64 in the big-index build)."""
    return np.uint32 if pl.get_index_type() == pl.UInt32 else np.uint64
