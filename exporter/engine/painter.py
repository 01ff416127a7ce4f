"""The painter: layered interval sources resolved by priority, per key, over time.

Generic interval math (no OpenStack words). ``layers[0]`` has the highest priority. Per key, a
layer keeps the pieces of its intervals that no higher layer covers — not by an interval of
its own, nor by a *tombstone* (an interval where a higher layer says "this key does not exist":
it ends the say of every lower layer without producing a piece). Where every higher layer is
silent, the next one speaks. What a layer loses to higher ones is returned as its overridden
pieces. Per input interval: kept hours + overridden hours = its hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from exporter.engine import intervals


@dataclass(frozen=True)
class Painted:
    """One layer after painting: the pieces it wins and the pieces higher layers took."""

    kept: pl.LazyFrame
    overridden: pl.LazyFrame


def paint(layers: Sequence[pl.LazyFrame], *, by: Sequence[str], open_end: datetime,
          tombstones: Sequence[pl.LazyFrame | None] | None = None) -> list[Painted]:
    """Each layer's pieces outside everything higher layers cover (their intervals and tombstones).

    Every layer has ``by`` + ``start`` + ``end`` (+ any columns, kept on the pieces, with
    ``original_start``/``original_end`` and ``trimmed`` as ``intervals.clip_to_parent`` sets
    them); null ends are open at ``open_end``. ``tombstones[i]`` (``by`` + ``start`` + ``end``,
    or None) belongs to layer i.
    """
    by = list(by)
    tombstones = list(tombstones or [None] * len(layers))
    if len(tombstones) != len(layers):
        raise ValueError("one tombstone frame (or None) per layer")
    painted, covered = [], []
    for layer, tombstone in zip(layers, tombstones):
        if covered:
            higher = pl.concat(covered, how="vertical_relaxed")
            overridden, kept = intervals.clip_to_parent(layer, higher, by=by, open_end=open_end)
        else:
            kept, overridden = layer, layer.filter(pl.lit(False))
        painted.append(Painted(kept=kept, overridden=overridden))
        covered.append(_windows(layer, by))
        if tombstone is not None:
            covered.append(_windows(tombstone, by))
    return painted


def _windows(frame: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
    return frame.select(*by, "start", "end")
