"""The leaf formula of a selection, read off the leaf table (exporter.reconstruct.leaves.LEAF_TABLE).

A selection of (pool, state) leaves sums them, so its formula is the sum of their rows of the
leaf table: one signed coefficient per level-series (levels that cancel drop out, e.g. the
whole reservable pool is just ``reservable``). Nothing here restates the rule; it only adds up
the table the timeline itself is built from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exporter.reconstruct.leaves import LEAF_TABLE, series_name


@dataclass(frozen=True)
class Formula:
    """The selected leaves and Σ of their terms: ``{series name: sign}`` (zero terms left out)."""

    leaves: tuple[tuple[str, str], ...]  # (pool, state), in leaf-table order
    coefficients: dict[str, int]  # level-series name (``occupied.reservation``) -> summed sign

    def text(self) -> str:
        """``committed - occupied.reservation``: the selection as the code computes it."""
        terms = [(sign, name) for name, sign in self.coefficients.items()]
        if not terms:
            return "0"
        parts = []
        for index, (sign, name) in enumerate(terms):
            size = "" if abs(sign) == 1 else f"{abs(sign)} x "
            operator = ("-" if sign < 0 else "") if index == 0 else (" - " if sign < 0 else " + ")
            parts.append(f"{operator}{size}{name}")
        return "".join(parts)


def leaf_terms(pool: str, state: str) -> str:
    """One leaf's row of the leaf table as text, e.g. ``reservable/idle = committed - occupied.reservation``."""
    return f"{pool}/{state} = {selection_formula([pool], [state]).text()}"


def selection_formula(pools: Sequence[str] | None, states: Sequence[str] | None) -> Formula:
    """The formula of every leaf whose pool is in ``pools`` and state in ``states`` (None: any)."""
    leaves, coefficients = [], {}
    for pool, state, terms in LEAF_TABLE:
        if (pools is None or pool in pools) and (states is None or state in states):
            leaves.append((pool, state))
            for sign, level, booking in terms:
                name = series_name(level, booking)
                coefficients[name] = coefficients.get(name, 0) + sign
    return Formula(tuple(leaves), {name: sign for name, sign in coefficients.items() if sign})
