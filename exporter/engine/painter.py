"""The painter: layered interval sources resolved by priority, per key, over time.

Generic interval math (no OpenStack words). ``layers[0]`` has the highest priority. Per key, a
layer keeps the pieces of its intervals that no higher layer covers — not by an interval of
its own, nor by a *tombstone* (an interval where a higher layer says "this key does not exist":
it ends the say of every lower layer without producing a piece). Where every higher layer is
silent, the next one speaks. What a layer loses to higher ones is the rest of its intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from exporter.engine import eager_clip


def paint(layers: Sequence[pl.DataFrame], *, by: Sequence[str], open_end: datetime,
          tombstones: Sequence[pl.DataFrame | None] | None = None) -> list[pl.DataFrame]:
    """Each layer's pieces outside everything higher layers cover (their intervals and tombstones).

    Every layer has ``by`` + ``start`` + ``end`` + ``original_start``/``original_end`` (null: the
    row's own window) and any columns, kept on its pieces (``eager_clip.clip_rows_to_parent``'s
    outside pieces; ``layers[0]`` is returned as it is); null ends are open at ``open_end``.
    ``tombstones[i]`` (``by`` + ``start`` + ``end``, or None) belongs to layer i.
    """
    tombstones = list(tombstones or [None] * len(layers))
    if len(tombstones) != len(layers):
        raise ValueError("one tombstone frame (or None) per layer")
    painted, covered = [], []
    for layer, tombstone in zip(layers, tombstones):
        if covered:
            painted.append(eager_clip.clip_rows_to_parent(layer, pl.concat(covered, how="vertical_relaxed"), by=by,
                                                          open_end=open_end, outside=True))
        else:
            painted.append(layer)
        covered += [frame.select(*by, "start", "end") for frame in (layer, tombstone) if frame is not None]
    return painted
