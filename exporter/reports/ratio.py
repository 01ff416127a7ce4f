"""The one rule for every ratio the reports print (docs/reports.md, "Ratios")."""

from __future__ import annotations

import polars as pl


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator; null when the denominator is 0 or missing, never inf, NaN or 0."""
    return pl.when(denominator != 0).then(numerator / denominator)
