"""`report` on a generated CHI@Edge site: device-hours per (period, machine_name), checked against
the generator's truth (truth.json and truth_spans.parquet, computed by the generator's own
interval arithmetic), not against the reconstruction's outputs."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from exporter.cli import cli
from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_into
from exporter.reports import run_coverage, run_report
from exporter.sitegen import generate_site

START = dt.datetime(2021, 6, 1)  # before May 2022: some devices retired without leaving a row
LEVELS = ("total", "reservable", "committed", "maintenance", "occupied", "stopped")
WHOLE = ("total", "reservable", "committed", "maintenance")  # what the device and lease rows keep exactly


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge-report")
    site = generate_site(f"sqlite:///{root}/site.sqlite", hosts=14, years=2.5, seed=11, kind="edge", start=START,
                         truth_dir=root / "truth", site="edge")
    config = SiteConfig(name="edge", display_name="edge", db_url=site.url, kind="edge", databases=site.databases)
    snapshot = extract_snapshot(config, root / "snapshots").snapshot_dir
    reconstruct_into(snapshot, ReconstructOptions(site="edge", start=START, snapshot_time=site.end), root / "out")
    return root, site


def _months(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    out, first = [], start.replace(day=1, hour=0, minute=0, second=0)
    while first < end:
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        out.append((first.date(), max(first, start), min(nxt, end)))
        first = nxt
    return out


def _truth_by_month(spans: pl.DataFrame, site_end: dt.datetime) -> pl.DataFrame:
    """level, node_type, period_start, hours: truth spans clipped into each calendar month."""
    months = pl.DataFrame(_months(START, site_end), schema=["period_start", "lo", "hi"], orient="row")
    clipped = spans.join(months, how="cross").with_columns(
        pl.max_horizontal("start", pl.col("lo").cast(spans["start"].dtype)).alias("a"),
        pl.min_horizontal(pl.col("end").fill_null(pl.lit(site_end)), pl.col("hi").cast(spans["start"].dtype)).alias("b"))
    hours = pl.max_horizontal((pl.col("b") - pl.col("a")).dt.total_seconds() / 3600, pl.lit(0.0))
    return clipped.group_by("level", "node_type", "period_start").agg(hours.sum().alias("hours"))


def test_device_report_is_the_generators_truth_per_level_machine_and_month(edge, tmp_path):
    root, site = edge
    result = run_report(root / "out", period="month", out_dir=tmp_path)
    devices = result.devices
    assert devices is not None and (tmp_path / "report-month-devices.md").exists()
    assert result.table.height == 0  # an edge site has no hosts: its node report is empty
    # and says so in one line, not with a table header over no rows
    assert (tmp_path / "report-month.md").read_text() == (
        "# Node-hours per month\n\nNo hosts in this site's timeline: its usage is its devices, "
        "in report-month-devices.md.\n")
    truth = json.loads((root / "truth" / "truth.json").read_text())
    # every level over the whole history is the recoverable truth (the generator's arithmetic)
    for level in LEVELS:
        assert devices[f"device_hours_{level}"].sum() == pytest.approx(truth["device_hours_recoverable"][level],
                                                                       rel=1e-9), level
    # per machine and month, the levels the device and lease rows keep: the truth spans of the
    # devices with a row under their model; a device retired without a row is under "unknown"
    with sa.create_engine(f"sqlite:///{root}/blazar.sqlite").connect() as db:  # the generated Blazar database
        with_row = {name for (name,) in db.execute(sa.text("SELECT name FROM devices"))}
    spans = pl.read_parquet(root / "truth" / "truth_spans.parquet").filter(pl.col("level").is_in(WHOLE))
    rowless = spans.filter(~pl.col("hypervisor_hostname").is_in(list(with_row)))
    assert rowless.height  # the site has such devices
    expected = pl.concat([
        _truth_by_month(spans.filter(pl.col("hypervisor_hostname").is_in(list(with_row))), site.end),
        _truth_by_month(rowless.filter(pl.col("level").is_in(["committed", "maintenance"]))
                        .with_columns(pl.lit("unknown").alias("node_type")), site.end)])
    reported = devices.unpivot(index=["period_start", "machine_name"], on=[f"device_hours_{lv}" for lv in WHOLE],
                               variable_name="level", value_name="reported").with_columns(
        pl.col("level").str.strip_prefix("device_hours_"))
    both = expected.rename({"node_type": "machine_name"}).join(reported, on=["level", "machine_name", "period_start"],
                                                                 how="left")
    assert both.height > 100 and both["reported"].null_count() == 0
    assert both.filter((pl.col("reported") - pl.col("hours")).abs() > 1e-6).height == 0
    # the utilization of a complete month is committed / reservable of those truth hours
    month = expected.filter((pl.col("node_type") == "raspberrypi4-64")
                            & (pl.col("period_start") == dt.date(2022, 3, 1)))
    hours = dict(month.select("level", "hours").iter_rows())
    row = devices.filter((pl.col("machine_name") == "raspberrypi4-64") & (pl.col("period_start") == dt.date(2022, 3, 1)))
    assert row["complete"].item() and row["utilization"].item() == pytest.approx(
        hours["committed"] / hours["reservable"], rel=1e-9)


def test_report_cli_writes_device_rows_into_their_own_sql_table_twice_the_same(edge, tmp_path):
    root, _ = edge
    url = f"sqlite:///{tmp_path}/kpi.sqlite"
    args = ["report", str(root / "out"), "--period", "week", "--out", str(tmp_path), "--db-url", url, "--table", "kpi"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert f"wrote {tmp_path / 'report-week-devices.md'}" in first.output
    week = pl.read_parquet(tmp_path / "report-week-devices.parquet")
    assert f"{week.height} rows written to table kpi_devices" in first.output
    assert CliRunner().invoke(cli, args).exit_code == 0  # a rerun replaces its periods' rows
    with sa.create_engine(url).connect() as db:
        stored = db.execute(sa.text("SELECT COUNT(*), SUM(device_hours_committed) FROM kpi_devices")).one()
        key = [c["name"] for c in sa.inspect(db).get_columns("kpi_devices") if c["primary_key"]]
    assert stored[0] == week.height and stored[1] == pytest.approx(week["device_hours_committed"].sum(), rel=1e-12)
    assert sorted(key) == sorted(["site", "period", "period_start", "machine_name"])


def test_coverage_counts_the_retired_devices_without_a_row_as_unknown_model_hours(edge, tmp_path):
    root, site = edge
    summary = run_coverage(root / "out", out_dir=tmp_path).table
    truth = json.loads((root / "truth" / "truth.json").read_text())
    with sa.create_engine(f"sqlite:///{root}/blazar.sqlite").connect() as db:
        with_row = {name for (name,) in db.execute(sa.text("SELECT name FROM devices"))}
    spans = pl.read_parquet(root / "truth" / "truth_spans.parquet").filter(pl.col("level") == "total")
    kept = spans.filter(pl.col("hypervisor_hostname").is_in(list(with_row)))
    known = ((pl.col("end").fill_null(pl.lit(site.end)) - pl.col("start")).dt.total_seconds() / 3600).sum()
    # what the truth can recover of total beyond the devices with a row: the retired ones' hours
    expected = truth["device_hours_recoverable"]["total"] - kept.select(known).item()
    assert expected > 0
    assert summary.filter(pl.col("level") == "total")["unknown"].sum() == pytest.approx(expected, rel=1e-9)
