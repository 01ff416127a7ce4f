"""timeline.parquet is written part by part from the grid, with the bytes of the whole long frame.

The file's bytes are part of the outputs' contract (same input -> byte-identical files), so the
streamed writer must give exactly what the in-memory writer gives for the long timeline.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import polars as pl

from exporter.columns import SPAN_SCHEMA, conform
from exporter.reconstruct.outputs import TIMELINE_PARQUET_OPTIONS, write_frame, write_timeline
from exporter.reconstruct.timeline import timeline_grid

HOUR = timedelta(hours=1)
T0 = datetime(2020, 1, 1)
END = T0 + 20_000 * HOUR  # over 16,384 grid rows per site: each site is more than one part


def _span(site, level, start, end, *, node_type, nodes=1.0, booking=None):
    return dict(site=site, level=level, booking=booking, node_type=node_type, start=start, end=end, nodes=nodes,
                vcpus=48.0 * nodes, memory_mb=1000.0 * nodes, disk_gb=0.0, gpus=0.0)


def _grid():
    rows = []
    for site, node_type in (("a", "gpu"), ("b", "cpu"), ("b", "fpga")):  # two sites, one with two node types
        rows += [_span(site, "total", T0, None, node_type=node_type, nodes=4.0),
                 _span(site, "reservable", T0 + 10 * HOUR, None, node_type=node_type, nodes=3.0),
                 _span(site, "committed", T0 + 17_000 * HOUR, T0 + 19_000.5 * HOUR, node_type=node_type, nodes=2.0),
                 _span(site, "occupied", T0 + 18_000.25 * HOUR, T0 + 18_001 * HOUR, node_type=node_type,
                       booking="reservation")]
    return timeline_grid(conform(pl.DataFrame(rows), SPAN_SCHEMA), start=T0, end=END, step=HOUR, open_end=END)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_timeline_written_from_the_grid_is_the_long_frame_byte_for_byte(tmp_path):
    grid = _grid()
    assert len(list(grid.long_parts())) > 3
    long = grid.long()
    write_frame(long, tmp_path / "whole.parquet", TIMELINE_PARQUET_OPTIONS)
    write_timeline(grid, tmp_path / "parts.parquet")
    assert _sha(tmp_path / "parts.parquet") == _sha(tmp_path / "whole.parquet")
    assert pl.read_parquet(tmp_path / "parts.parquet").equals(long)
    active = long.filter(pl.col("state") == "active", pl.col("resource") == "nodes", pl.col("value") != 0)
    assert active.select(pl.col("site", "node_type").cast(pl.String), "timestamp", "value").rows() == [
        (site, node_type, T0 + 18_000 * HOUR, 0.75) for site, node_type in (("a", "gpu"), ("b", "cpu"), ("b", "fpga"))]
    assert long["timestamp"].equals(grid.index["timestamp"].gather(pl.int_range(0, long.height, eager=True) // 45))
