"""The devices family: gauge = device leaves, counter = Σ earlier leaves × step; live = history."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from itertools import accumulate

import polars as pl
import pytest

from exporter.columns import SPAN_SCHEMA, conform
from exporter.reconstruct.device_family import COUNTER, GAUGE, held, history_frames, live_frames
from exporter.reconstruct.timeline import timeline_from_spans

T0 = dt.datetime(2024, 1, 1)
H = dt.timedelta(hours=1)


def spans() -> pl.DataFrame:
    """Two raspberry pis: one enrolled from T0 (reserved 1.5 h..3 h), one from T0 + 2 h."""
    rows = [("total", "pi-1", None, T0, None), ("reservable", "pi-1", "reservable", T0, None),
            ("committed", "pi-1", "reservable", T0 + 1.5 * H, T0 + 3 * H),
            ("total", "pi-2", None, T0 + 2 * H, None), ("reservable", "pi-2", "reservable", T0 + 2 * H, None)]
    frame = pl.DataFrame([{"site": "e", "level": lvl, "hypervisor_hostname": h, "node_type": "raspberrypi4-64",
                           "pool": pool, "start": s, "end": e, "nodes": 1.0} for lvl, h, pool, s, e in rows])
    return conform(frame, SPAN_SCHEMA)


def test_gauge_and_counter_by_hand():
    timeline = timeline_from_spans(spans(), start=T0, end=T0 + 4 * H, step=H, open_end=T0 + 4 * H)
    frames = history_frames(timeline, step=H)
    idle = frames[GAUGE].filter((pl.col("pool") == "reservable") & (pl.col("state") == "idle"))
    assert idle["value"].to_list() == [0.0, 0.5, 1.0, 0.0]
    available = frames[COUNTER].filter((pl.col("pool") == "reservable") & (pl.col("state") == "available"))
    # available devices per hour: 1, 0.5, 1, 2 -> counter before each hour: 0, 1, 1.5, 2.5 device-hours
    assert available["value"].to_list() == [0.0, 3600.0, 5400.0, 9000.0]
    assert set(frames[GAUGE].columns) == {"site", "machine_name", "pool", "state", "timestamp", "value"}


def test_live_frames_continue_the_history_at_a_grid_time():
    at = T0 + 3 * H
    timeline = timeline_from_spans(spans(), start=T0, end=T0 + 4 * H, step=H, open_end=T0 + 4 * H)
    history = history_frames(timeline, step=H)[COUNTER].filter(pl.col("timestamp") == at)
    live = live_frames(spans(), at=at, gauge_at=at - dt.timedelta(microseconds=1), origin=T0)
    keys = ["machine_name", "pool", "state"]
    joined = history.join(live[COUNTER], on=keys, suffix="_live")
    assert joined.height == history.height
    assert joined["value"].to_list() == pytest.approx(joined["value_live"].to_list())
    # incremental: counters to T0 + 2 h, then the rest, add up to the whole
    first = live_frames(spans(), at=T0 + 2 * H, gauge_at=T0 + 2 * H, origin=T0)
    rest = live_frames(spans(), at=at, gauge_at=at, origin=T0 + 2 * H, since=first)
    whole = rest[COUNTER].join(live[COUNTER], on=keys, suffix="_whole")
    assert whole["value"].to_list() == pytest.approx(whole["value_whole"].to_list())


def test_a_live_counter_never_goes_down():
    now = live_frames(spans(), at=T0 + 3 * H, gauge_at=T0 + 3 * H, origin=T0)
    lower = {**now, COUNTER: now[COUNTER].with_columns(pl.col("value") - 1.0)}
    kept, count = held(now, lower, at=T0 + 3 * H)
    assert kept[COUNTER]["value"].to_list() == now[COUNTER]["value"].to_list()
    assert count == now[COUNTER].height  # every series held (openstack_usage_counters_held)
    assert held(now, now, at=T0 + 3 * H)[1] == 0


def test_a_live_counter_series_never_vanishes_to_come_back_lower():
    now = live_frames(spans(), at=T0 + 3 * H, gauge_at=T0 + 3 * H, origin=T0)
    idle = (pl.col("pool") == "reservable") & (pl.col("state") == "idle")
    without = {**now, COUNTER: now[COUNTER].filter(~idle)}
    kept, count = held(now, without, at=T0 + 4 * H)
    kept = kept[COUNTER]
    assert count == 1  # the vanished series is held
    assert kept.height == now[COUNTER].height and set(kept["timestamp"]) == {T0 + 4 * H}
    assert kept.filter(idle)["value"].to_list() == now[COUNTER].filter(idle)["value"].to_list() == [1.5 * 3600]
    back = held(held(now, without, at=T0 + 4 * H)[0], {**now, COUNTER: now[COUNTER].with_columns(value=pl.lit(1.0))},
                at=T0 + 5 * H)[0][COUNTER]
    assert back.filter(idle)["value"].to_list() == [1.5 * 3600]  # returns lower: held at what was served


def test_the_history_counter_never_drops_by_a_rounding():
    """Fractional device counts (time-weighted hours): Σ earlier × step is a running sum, never
    ``Σ through now − now``, which rounds below the previous value (a reset in Prometheus; CI saw
    2004.0 then 2003.9999999999998); and it is the exact sum rounded once, as the node counters
    (tests/backfill/test_counter_junction.py)."""
    values = [0.165, 4.419, 4.517, 2.9, 2.29, 0.917, 4.5, 1.521, 3.5, 1.769, 4.14, 2.801, 3.798, 0.14, 0.2,
              2.5, 0.183, 3.248, 2.84, 2.596, 0.271, 1.6, 0.3, 4.077, 3.6, 3.46, 3.93, 3.3, 0.0, 4.94]
    timeline = pl.DataFrame({"site": "e", "node_type": "raspberrypi4-64", "resource": "nodes", "pool": "reservable",
                             "state": "idle", "timestamp": [T0 + i * H for i in range(len(values))], "value": values})
    counter = history_frames(timeline, step=H)[COUNTER]["value"].to_list()
    assert all(later >= earlier for earlier, later in zip(counter, counter[1:]))
    exact = accumulate((Fraction(value * 3600.0) for value in values[:-1]), initial=Fraction(0))
    assert counter == [float(total) for total in exact]
