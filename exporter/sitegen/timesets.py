"""Sets of instants as sorted, disjoint ``[start, end)`` pairs of epoch seconds (the truth side).

The generator computes its truth from its own records with these few operations, never with
the reconstruction's code, so the two stay independent implementations of the same rules.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

Pairs = list[tuple[int, int]]


def union(pairs: Iterable[tuple[int, int]]) -> Pairs:
    """Sorted, disjoint, non-touching pairs covering exactly the non-empty input pairs."""
    merged: Pairs = []
    for start, end in sorted(p for p in pairs if p[1] > p[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(pairs: Pairs, cut: Pairs) -> Pairs:
    """``pairs`` minus ``cut`` (both unions)."""
    out: Pairs = []
    for start, end in pairs:
        at = max(0, bisect.bisect_right(cut, (start, start)) - 1)
        while start < end:
            if at >= len(cut) or cut[at][0] >= end:
                out.append((start, end))
                break
            c_start, c_end = cut[at]
            if c_end <= start:
                at += 1
                continue
            if c_start > start:
                out.append((start, c_start))
            start = max(start, c_end)
            at += 1
    return out


def intersect(pairs: Pairs, other: Pairs) -> Pairs:
    """Instants in both unions."""
    return subtract(pairs, subtract(pairs, other))


def seconds(pairs: Pairs) -> int:
    return sum(end - start for start, end in pairs)


def boundaries(*sets: Pairs) -> list[int]:
    """Every start and end of the given unions, sorted and unique."""
    return sorted({t for pairs in sets for pair in pairs for t in pair})


def covers(pairs: Pairs, at: int) -> bool:
    """Whether ``at`` lies in one of the pairs."""
    index = bisect.bisect_right(pairs, (at, float("inf"))) - 1
    return index >= 0 and pairs[index][0] <= at < pairs[index][1]
