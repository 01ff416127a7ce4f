"""Time as the whole tool sees it: naive UTC datetimes in microseconds.

Every stored and computed timestamp is naive UTC (the databases store UTC without a zone);
``utc_now`` is the one place that reads the clock in that form.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

TIME = pl.Datetime("us")  # the dtype of every timestamp column
# No OpenStack cloud is older (Austin, 2010; 2000 leaves room): earlier times are broken clocks.
EARLIEST_PLAUSIBLE = dt.datetime(2000, 1, 1)


def utc_now() -> dt.datetime:
    """The current time as naive UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
