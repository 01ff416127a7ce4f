"""The polars dtype of every timestamp column: naive UTC in microseconds.

Apart from ``exporter.timeutil`` (the clock, no polars) so that what the live exporter loads before
it serves stays free of polars (exporter.live.late).
"""

from __future__ import annotations

import polars as pl

TIME = pl.Datetime("us")
