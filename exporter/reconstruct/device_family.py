"""An edge site's devices as series: the gauge and counter frames of the devices family.

``openstack_usage_devices{site, machine_name, pool, state}`` is the device timeline's leaves (a
device is one unit, labelled by its hardware model), and ``openstack_usage_device_seconds_total``
integrates them from the site's history start, exactly as the node families do: at grid time t_k
the counter is Σ_{j<k} value_j × step. The live exporter computes the same two frames for now from
the same device spans (``live_frames``), so history and present are one series.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.engine import held as engine_held
from exporter.engine.running import running_sum_before
from exporter.metrics import DEVICE_LABELS, DEVICE_SECONDS, DEVICES
from exporter.reconstruct.devices_audit import DEVICE_RESOURCE
from exporter.reconstruct.timeline import counters_until, levels_at
from exporter.columns import TIME

GAUGE = DEVICES.name
COUNTER = DEVICE_SECONDS.name
LABELS = DEVICE_LABELS


def _long(frame: pl.DataFrame, timestamp: pl.Expr) -> pl.DataFrame:
    """Timeline-shaped rows (node_type = machine_name, resource nodes) as the family's long frame."""
    return frame.filter(pl.col("resource").cast(pl.String) == DEVICE_RESOURCE).select(
        pl.col("site").cast(pl.String), pl.col("node_type").cast(pl.String).alias("machine_name"),
        pl.col("pool").cast(pl.String), pl.col("state").cast(pl.String), timestamp.cast(TIME).alias("timestamp"),
        pl.col("value").cast(pl.Float64)).sort(*LABELS, "timestamp")


def history_frames(device_timeline: pl.DataFrame, *, step: dt.timedelta) -> dict[str, pl.DataFrame]:
    """{family name: long frame} of the device timeline: the gauge, and the counter from its start."""
    gauge = _long(device_timeline, pl.col("timestamp"))
    # the sum of the earlier terms, not cum_sum() - value (the subtraction rounds, and a counter that
    # drops by 1e-13 is a reset to Prometheus), rounded once as the node counters (docs/semantics.md)
    seconds = pl.col("value") * step.total_seconds()
    counter = gauge.lazy().with_columns(running_sum_before(seconds, over=LABELS).alias("value")).collect()
    return {GAUGE: gauge, COUNTER: counter}


def live_frames(devices: pl.DataFrame, *, at: dt.datetime, gauge_at: dt.datetime, origin: dt.datetime,
                since: dict[str, pl.DataFrame] | None = None) -> dict[str, pl.DataFrame]:
    """The two frames for now: gauges at ``gauge_at`` (the live gauges' left limit), counters over
    [origin, at) — added to ``since``'s counter frame when given (an incremental refresh whose
    ``devices`` hold only what can reach past ``origin``)."""
    stamp = pl.lit(at, dtype=TIME)
    gauge = _long(levels_at(devices, gauge_at), stamp)
    counter = _long(counters_until(devices, origin=origin, at=at).with_columns(stamp.alias("timestamp")), stamp)
    if since is not None and COUNTER in since:
        counter = _summed(since[COUNTER].with_columns(stamp.alias("timestamp")), counter)
    return {GAUGE: gauge, COUNTER: counter}


def held(previous: dict[str, pl.DataFrame] | None, current: dict[str, pl.DataFrame], *,
         at: dt.datetime) -> tuple[dict[str, pl.DataFrame], int]:
    """``current`` (computed for ``at``) with its counter held (exporter.engine.held: never lower
    than ``previous``'s, and a series ``previous`` had stays when ``current`` lacks it, e.g. every
    device of a model was deleted), and how many series are being held (for
    ``openstack_usage_counters_held``). ``previous`` needs only the labels and the value (a warm
    start restores no more)."""
    if not previous or COUNTER not in previous:
        return current, 0
    computed = current.get(COUNTER, pl.DataFrame(schema={**dict.fromkeys(LABELS, pl.String), "value": pl.Float64}))
    counter, n_held = engine_held.held_counters(previous[COUNTER], computed, LABELS)
    stamped = counter.select(*LABELS, pl.lit(at, dtype=TIME).alias("timestamp"), "value")
    return {**current, COUNTER: stamped}, n_held


def _summed(base: pl.DataFrame, increment: pl.DataFrame) -> pl.DataFrame:
    keys = [*LABELS, "timestamp"]
    joined = base.join(increment, on=keys, how="full", coalesce=True, suffix="_increment")
    return joined.select(*keys, (pl.col("value").fill_null(0.0) + pl.col("value_increment").fill_null(0.0))
                         .alias("value")).sort(*LABELS)
