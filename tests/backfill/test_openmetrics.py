"""The OpenMetrics renderer: exact bytes on a hand-made timeline, parsing, determinism, bad input."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess

import polars as pl
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.errors import TimelineError
from exporter.backfill.checked import checked_timeline
from exporter.backfill.openmetrics import (escape_label, family_parts, render_openmetrics, sample_lines, sample_prefixes,
                                           sample_values, series_labels, write_samples)
from exporter.columns import TIMELINE_SCHEMA
from exporter.engine.running import running_sum_before
from tests.backfill.timelines import synthetic_timeline

T0 = dt.datetime(2024, 1, 1)  # 1704067200


def tiny_timeline() -> pl.DataFrame:
    """Two leaves of one node type over three hours, values chosen by hand."""
    rows = []
    for hour, (available, active) in enumerate([(2.0, 1.0), (3.0, 0.0), (5.0, 4.0)]):
        at = T0 + dt.timedelta(hours=hour)
        rows += [("uc", at, "gpu", "reservable", "available", "nodes", available),
                 ("uc", at, "gpu", "reservable", "active", "nodes", active)]
    return pl.DataFrame(rows, schema=TIMELINE_SCHEMA, orient="row")


LABELS = 'instance="i",job="j",node_type="gpu",pool="reservable",site="uc"'
EXPECTED_TINY = f"""\
# HELP openstack_usage_nodes Compute nodes (KVM: fraction of a host by vCPU share); mean over the step starting at the sample time
# TYPE openstack_usage_nodes gauge
openstack_usage_nodes{{{LABELS},state="active"}} 1.0 1704067200
openstack_usage_nodes{{{LABELS},state="active"}} 0.0 1704070800
openstack_usage_nodes{{{LABELS},state="active"}} 4.0 1704074400
openstack_usage_nodes{{{LABELS},state="available"}} 2.0 1704067200
openstack_usage_nodes{{{LABELS},state="available"}} 3.0 1704070800
openstack_usage_nodes{{{LABELS},state="available"}} 5.0 1704074400
# HELP openstack_usage_node_seconds Compute nodes (KVM: fraction of a host by vCPU share); integral since the site's history start, in resource-seconds
# TYPE openstack_usage_node_seconds counter
# UNIT openstack_usage_node_seconds seconds
openstack_usage_node_seconds_total{{{LABELS},state="active"}} 0.0 1704067200
openstack_usage_node_seconds_total{{{LABELS},state="active"}} 3600.0 1704070800
openstack_usage_node_seconds_total{{{LABELS},state="active"}} 3600.0 1704074400
openstack_usage_node_seconds_total{{{LABELS},state="available"}} 0.0 1704067200
openstack_usage_node_seconds_total{{{LABELS},state="available"}} 7200.0 1704070800
openstack_usage_node_seconds_total{{{LABELS},state="available"}} 18000.0 1704074400
# EOF
"""


def test_tiny_timeline_renders_exactly_the_hand_written_document():
    assert render_openmetrics(tiny_timeline(), job="j", instance="i").decode() == EXPECTED_TINY


def test_values_before_a_time_are_every_value_then_cut_bit_for_bit():
    """The cut taken before the counter rows are made (half the rows to copy) gives the rows, their
    order and the counters' bits of cutting the whole output."""
    frame = synthetic_timeline(start=T0, hours=30, node_types=("a", "b"), resources=("nodes", "vcpus"))
    checked = checked_timeline(frame.with_columns(value=pl.col("value") * 1.37e5 / 7.0))  # fractional sums
    for hours in (1, 17, 29, 30):
        before = int((T0 + dt.timedelta(hours=hours) - dt.datetime(1970, 1, 1)).total_seconds())
        cut = sample_values(checked).filter(pl.col("t") < before)
        got = sample_values(checked, before=before)
        assert got.equals(cut)
        assert got["value"].to_numpy().tobytes() == cut["value"].to_numpy().tobytes()


def test_values_before_a_time_keep_the_whole_series_quantum_across_a_power_of_two():
    """Σ|terms| of the kept four hours (~21960) is below 2^15, of all five (43200) above: the
    counters' quantum (exporter.engine.running) is the whole series', as the expression's over
    all rows. For these values (found by search) a quantum taken after the cut gives other bits."""
    values = [3e-13, 1e-17, 6.1, 7e-16, 5.9]
    rows = [("uc", T0 + dt.timedelta(hours=hour), "gpu", "reservable", "available", "nodes", value)
            for hour, value in enumerate(values)]
    checked = checked_timeline(pl.DataFrame(rows, schema=TIMELINE_SCHEMA, orient="row"))
    terms = pl.Series("x", values) * 3600.0
    assert terms.head(4).abs().sum() < 2.0 ** 15 < terms.abs().sum()
    whole = pl.DataFrame({"g": [0] * 5, "x": terms}).select(running_sum_before(pl.col("x"), over="g"))["x"]
    before = int((T0 + dt.timedelta(hours=4) - dt.datetime(1970, 1, 1)).total_seconds())
    counters = sample_values(checked, before=before).filter(pl.col("family") == 1)["value"]
    assert counters.to_numpy().tobytes() == whole.head(4).to_numpy().tobytes()


def test_row_order_of_the_input_does_not_change_a_byte():
    timeline = synthetic_timeline(start=T0, hours=30, node_types=("a", "b"), resources=("nodes", "gpus"))
    first = render_openmetrics(timeline, job="j", instance="i")
    assert render_openmetrics(timeline.sample(fraction=1.0, shuffle=True, seed=7), job="j", instance="i") == first


def test_families_split_over_several_runs_are_grouped_in_row_order():
    """family_parts gives a window's families as slices when each is one run of rows; rows whose
    families interleave (any row subset of sample_values may) still give one block per family."""
    checked = checked_timeline(synthetic_timeline(start=T0, hours=5, node_types=("a",), resources=("nodes", "gpus")))
    lines = sample_lines(sample_values(checked), sample_prefixes(series_labels(checked, job="j", instance="i")))
    interleaved = lines.sort("t", "family", maintain_order=True)

    def text(frame: pl.DataFrame) -> str:
        buffer = io.BytesIO()
        write_samples(family_parts(frame), buffer)
        return buffer.getvalue().decode()

    assert interleaved["family"].rle_id().max() + 1 > interleaved["family"].n_unique()  # really split
    written = text(interleaved)
    assert written == text(interleaved.sort("family", maintain_order=True))
    assert written.count("# TYPE ") == lines["family"].n_unique()


def test_output_parses_as_openmetrics_with_units_and_counter_integrals():
    timeline = synthetic_timeline(start=T0, hours=5, node_types=("x",), resources=("nodes", "memory_bytes"))
    text = render_openmetrics(timeline, job="openstack-usage", instance="exp").decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert set(families) == {"openstack_usage_nodes", "openstack_usage_node_seconds",
                             "openstack_usage_memory_bytes", "openstack_usage_memory_byte_seconds"}
    assert families["openstack_usage_memory_bytes"].unit == "bytes"
    assert families["openstack_usage_node_seconds"].type == "counter"
    counter = [s for s in families["openstack_usage_node_seconds"].samples
               if s.labels["pool"] == "ondemand" and s.labels["state"] == "active"]
    gauge = timeline.filter(pl.col("resource") == "nodes", pl.col("pool") == "ondemand",
                            pl.col("state") == "active").sort("timestamp")["value"].to_list()
    assert [s.value for s in counter] == [sum(gauge[:k]) * 3600 for k in range(5)]
    assert {s.labels["job"] for f in families.values() for s in f.samples} == {"openstack-usage"}
    assert text.endswith("# EOF\n")


def test_label_values_are_escaped_and_round_trip():
    tricky = 'we"ird\\site\nname'
    timeline = tiny_timeline().with_columns(site=pl.lit(tricky))
    text = render_openmetrics(timeline, job='j"1', instance="i\\2").decode()
    assert escape_label(tricky) == 'we\\"ird\\\\site\\nname'
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert {(s.labels["site"], s.labels["job"], s.labels["instance"]) for s in samples} == {(tricky, 'j"1', "i\\2")}


@pytest.mark.prometheus
def test_promtool_accepts_the_output_and_keeps_every_sample(promtool, tmp_path):
    timeline = synthetic_timeline(start=T0, hours=48, node_types=("a",), resources=("nodes", "disk_bytes"))
    path = tmp_path / "in.om"
    path.write_bytes(render_openmetrics(timeline, job="j", instance="i"))
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=4374h",
                    str(path), str(tmp_path / "blocks")], check=True, capture_output=True)
    metas = [json.loads(p.read_text()) for p in (tmp_path / "blocks").glob("*/meta.json")]
    # 8 leaves x 2 resources x (gauge + counter) series, 48 samples each
    assert sum(m["stats"]["numSeries"] for m in metas) == 8 * 2 * 2
    assert sum(m["stats"]["numSamples"] for m in metas) == 8 * 2 * 2 * 48


def _broken(change) -> pl.DataFrame:
    return change(synthetic_timeline(start=T0, hours=4, node_types=("a",), resources=("nodes",)))


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop("state"), "missing column(s): state"),
    (lambda f: f.with_columns(extra=pl.lit(1)), "unexpected column(s): extra"),
    (lambda f: f.head(0), "empty"),
    (lambda f: f.with_columns(value=pl.when(pl.col("value") > 1).then(None).otherwise(pl.col("value"))),
     "null values in column(s): value"),
    (lambda f: pl.concat([f, f.head(1)]), "sharing a (site, timestamp"),
    (lambda f: f.filter(~((pl.col("state") == "idle") & (pl.col("timestamp") == T0))), "lack grid times"),
    (lambda f: f.filter(pl.col("timestamp") != T0 + dt.timedelta(hours=1)), "spacing varies"),
    (lambda f: f.with_columns(value=pl.lit(float("nan"))), "NaN or infinite"),
    (lambda f: f.with_columns(resource=pl.lit("cpus")), "unknown value(s) ['cpus']"),
    (lambda f: f.with_columns(state=pl.lit("busy")), "column 'state' has unknown value(s)"),
    (lambda f: f.with_columns(timestamp=pl.col("timestamp") + dt.timedelta(milliseconds=5)), "not whole seconds"),
    (lambda f: f.with_columns(timestamp=pl.col("timestamp") - dt.timedelta(days=30000)), "before 1970"),
    (lambda f: f.filter(pl.col("timestamp") == T0), "cannot infer its step"),
    (lambda f: f.with_columns(value=pl.col("value").cast(pl.String)), "has type String"),
])
def test_malformed_timelines_are_one_clear_error(change, message):
    with pytest.raises(TimelineError) as caught:
        render_openmetrics(_broken(change), job="j", instance="i")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_single_time_point_renders_when_the_step_is_given():
    single = _broken(lambda f: f.filter(pl.col("timestamp") == T0))
    text = render_openmetrics(single, job="j", instance="i", step_seconds=3600).decode()
    # gauge: HELP, TYPE + 8 samples; counter: HELP, TYPE, UNIT + 8 samples; EOF
    assert text.count("\n") == (2 + 8) + (3 + 8) + 1
    assert text.count(" 1704067200\n") == 16


def test_counters_must_start_at_the_requested_origin():
    with pytest.raises(TimelineError, match="starts at 2024-01-01 00:00, but counters must integrate from 2016"):
        render_openmetrics(tiny_timeline(), job="j", instance="i", origin=dt.datetime(2016, 1, 1))
    assert render_openmetrics(tiny_timeline(), job="j", instance="i", origin=T0).decode() == EXPECTED_TINY
