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
from exporter.reconstruct.timeline import counters_until, timeline_grid

HOUR = timedelta(hours=1)
T0 = datetime(2020, 1, 1)
END = T0 + 20_000 * HOUR  # over 16,384 grid rows per site: each site is more than one part


def _span(site, level, start, end, *, node_type, nodes=1.0, booking=None):
    return dict(site=site, level=level, booking=booking, node_type=node_type, start=start, end=end, nodes=nodes,
                vcpus=48.0 * nodes, memory_mb=1000.0 * nodes, disk_gb=0.0, gpus=0.0)


def _spans():
    rows = []
    # two sites, one with two node types; each group's own total
    for more, (site, node_type) in enumerate((("a", "gpu"), ("b", "cpu"), ("b", "fpga"))):
        rows += [_span(site, "total", T0, None, node_type=node_type, nodes=4.0 + more),
                 _span(site, "reservable", T0 + 10 * HOUR, None, node_type=node_type, nodes=3.0),
                 _span(site, "committed", T0 + 17_000 * HOUR, T0 + 19_000.5 * HOUR, node_type=node_type, nodes=2.0),
                 _span(site, "occupied", T0 + 18_000.25 * HOUR, T0 + 18_001 * HOUR, node_type=node_type,
                       booking="reservation")]
    return conform(pl.DataFrame(rows), SPAN_SCHEMA)


def _grid():
    return timeline_grid(_spans(), start=T0, end=END, step=HOUR, open_end=END)


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
    keys = ["site", "node_type", "pool", "state", "resource"]
    assert long.equals(long.sort("site", "timestamp", "node_type", "pool", "state", "resource"))
    # each (group, leaf) series lands on its own rows: its integral is the one summed from the
    # spans without the grid (counters_until); the groups' totals differ
    integral = long.group_by(keys).agg(pl.col("value").sum() * 3600.0)
    counted = integral.join(counters_until(_spans(), origin=T0, at=END), on=keys, how="full", coalesce=True)
    assert counted.height == 3 * 45
    assert counted.filter((pl.col("value") - pl.col("value_right")).abs() > 1e-6 * pl.col("value_right").abs()
                          ).height == 0
    unknown = counted.filter(pl.col("pool") == "unknown", pl.col("resource") == "nodes")
    # unknown = total - reservable: the whole total for 10 h, then total - 3 for 19,990 h
    assert dict(unknown.select(pl.col("node_type").cast(pl.String), "value").rows()) == {
        node_type: (total * 10 + (total - 3) * 19_990) * 3600.0 for node_type, total in (("gpu", 4), ("cpu", 5), ("fpga", 6))}
