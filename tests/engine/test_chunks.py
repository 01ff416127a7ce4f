"""engine.chunks.row_blocks: every row once, in order, numbered from the column's start, across
chunks of any length and blocks ending inside a chunk."""

from __future__ import annotations

import numpy as np
import polars as pl

from exporter.engine import chunks


def test_row_blocks_cover_every_row_once_in_order_across_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "BLOCK_ROWS", 3)
    column = pl.concat([pl.Series("x", range(start, start + n)) for start, n in ((0, 5), (5, 1), (6, 8), (14, 0), (14, 3))],
                       rechunk=False)
    assert column.n_chunks() >= 4
    got = list(chunks.row_blocks(column))
    assert [first for first, _ in got] == [0, 3, 5, 6, 9, 12, 14]  # a chunk's last block is short
    assert all(block.tolist() == list(range(first, first + len(block))) for first, block in got)
    assert np.concatenate([block for _, block in got]).tolist() == list(range(17))


def test_index_dtype_holds_polars_row_numbers():
    assert pl.Series(np.arange(3, dtype=chunks.index_dtype())).dtype == pl.get_index_type()
