"""Time as the whole tool sees it: naive UTC datetimes in microseconds.

Every stored and computed timestamp is naive UTC (the databases store UTC without a zone);
``utc_now`` is the one place that reads the clock in that form. Their polars dtype is
``exporter.timetype.TIME`` (kept apart: this module is imported before polars, exporter.live.late).
"""

from __future__ import annotations

import datetime as dt

# No OpenStack cloud is older (Austin, 2010; 2000 leaves room): earlier times are broken clocks.
EARLIEST_PLAUSIBLE = dt.datetime(2000, 1, 1)


def utc_now() -> dt.datetime:
    """The current time as naive UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
