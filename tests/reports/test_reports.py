"""`compare`, `report` and `report --coverage` on a small generated bare-metal site run through
the real pipeline (generate -> extract -> reconstruct). Expected numbers are recomputed here from
the timeline, the legacy table and audit.json, by the rules docs/legacy.md and docs/reports.md
state, not taken from the report code."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from exporter.cli import cli
from exporter.config import SiteConfig
from exporter.columns import COUNTED_ELSEWHERE
from exporter.extract.copy import extract_snapshot
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_into
from exporter.reports import run_compare, run_coverage, run_report
from exporter.sitegen import generate_site

START = dt.datetime(2025, 3, 1)
LEGACY = "chameleon_usage.node_usage_report_cache"
# docs/legacy.md: level -> (legacy columns summed), (pool, state) leaves of the timeline
MAPPING = {
    "total": (("total_hours",), None),
    "maintenance": (("maint_hours",), {("reservable", "maintenance")}),
    "committed": (("reserved_hours", "used_hours"), {("reservable", s) for s in ("idle", "active", "stopped")}),
    "occupied": (("used_hours",), {("reservable", "active"), ("reservable", "stopped")}),
    "idle": (("reserved_hours",), {("reservable", "idle")}),
    "unreserved": (("idle_hours",), "not committed or maintenance"),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    url = f"sqlite:///{root / 'site' / 'main.sqlite'}"
    generated = generate_site(url, hosts=8, years=75 / 365, seed=3, start=START, kind="baremetal", site="rep",
                              truth_dir=root / "truth")
    config = SiteConfig(name="rep", display_name="rep", db_url=url, databases=generated.databases,
                        history_start=START)
    snapshot = extract_snapshot(config, root / "snapshots").snapshot_dir
    reconstruct_into(snapshot, ReconstructOptions(site="rep", start=START, snapshot_time=generated.end), root / "out")
    return root, snapshot, root / "out"


def leaf_in(level: str, pool: str, state: str) -> bool:
    leaves = MAPPING[level][1]
    if leaves is None:
        return True
    if isinstance(leaves, str):
        return not (pool == "reservable" and state in ("maintenance", "idle", "active", "stopped"))
    return (pool, state) in leaves


def test_compare_rows_are_the_timeline_and_the_legacy_table_under_the_mapping(site, tmp_path):
    root, snapshot, out = site
    result = run_compare(out, snapshot_dir=snapshot, out_dir=tmp_path, figure=False)
    assert result.nothing_to_compare is None
    table = pl.read_parquet(tmp_path / "comparison.parquet")
    assert pl.read_csv(tmp_path / "comparison.csv").height == table.height > 0
    # timeline hours per (day, node type, leaf), summed by hand for every level
    timeline = pl.read_parquet(out / "timeline.parquet").filter(pl.col("resource") == "nodes")
    leaves = (timeline.with_columns(pl.col("timestamp").dt.date().alias("date"))
              .group_by("date", pl.col("node_type").cast(str), pl.col("pool").cast(str), pl.col("state").cast(str))
              .agg(pl.col("value").sum()))
    expected: dict[tuple, float] = {}
    for date, node_type, pool, state, value in leaves.iter_rows():
        for level in MAPPING:
            if leaf_in(level, pool, state):
                expected[(date, node_type, level)] = expected.get((date, node_type, level), 0.0) + value
    legacy = pl.read_parquet(snapshot / f"{LEGACY}.parquet")
    legacy_expected = {(row["date"].date(), row["node_type"], level): sum(row[c] for c in columns)
                       for row in legacy.iter_rows(named=True) for level, (columns, _) in MAPPING.items()}
    seen_legacy = 0
    for row in table.iter_rows(named=True):
        key = (row["date"], row["node_type"], row["level"])
        assert row["reconstructed_hours"] == pytest.approx(expected.get(key, 0.0), abs=1e-6), key
        if row["legacy_hours"] is not None:
            seen_legacy += 1
            assert row["legacy_hours"] == pytest.approx(legacy_expected[key], abs=1e-9), key
        else:
            assert key not in legacy_expected
        assert row["finding"] in {"agrees", "missing_in_databases", "missing_in_legacy", "definition"}
        if row["finding"] == "agrees" and row["relative_difference"] is not None:
            assert abs(row["relative_difference"]) <= 0.01
    compared_days = set(table["date"].to_list())
    assert seen_legacy == sum(1 for key in legacy_expected if key[0] in compared_days) > 0
    # the generator's definitional differences show up: some rows differ by more than 1 %
    assert table.filter(pl.col("finding") != "agrees").height > 0
    # a day with unknown-pool hours is evidence the databases miss something: the unreserved level
    # (which holds the unknown pool) is never a mere "definition" difference there when lower
    unknown_days = set(leaves.filter((pl.col("pool") == "unknown") & (pl.col("value") > 0))["date"].to_list())
    assert unknown_days
    lower = table.filter((pl.col("level") == "unreserved") & pl.col("date").is_in(list(unknown_days))
                         & (pl.col("difference_hours") < 0) & (pl.col("finding") != "agrees"))
    assert set(lower["finding"].to_list()) <= {"missing_in_databases"}


def test_compare_without_the_legacy_table_says_so_in_one_line(site, tmp_path):
    root, snapshot, out = site
    copy = tmp_path / "snapshot"
    shutil.copytree(snapshot, copy)
    (copy / f"{LEGACY}.parquet").unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["tables"][LEGACY]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli, ["compare", str(out), "--snapshot", str(copy), "--no-figure",
                                      "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0
    assert result.output.strip().splitlines() == [f"nothing to compare: snapshot {copy} has no {LEGACY}"]
    assert not (tmp_path / "cmp").exists()


def test_day_report_is_the_timeline_hours_and_adds_up_to_the_month(site, tmp_path):
    root, snapshot, out = site
    day = run_report(out, period="day", out_dir=tmp_path).table
    month = run_report(out, period="month", out_dir=tmp_path).table
    timeline = pl.read_parquet(out / "timeline.parquet")
    nodes = timeline.filter(pl.col("resource") == "nodes")
    assert day["node_hours_total"].sum() == pytest.approx(nodes["value"].sum(), rel=1e-9)
    committed = nodes.filter((pl.col("pool") == "reservable") & pl.col("state").is_in(["idle", "active", "stopped"]))
    assert day["node_hours_committed"].sum() == pytest.approx(committed["value"].sum(), rel=1e-9)
    vcpus = timeline.filter((pl.col("resource") == "vcpus") & pl.col("state").is_in(["active", "stopped"]))
    assert day["vcpu_hours_occupied"].sum() == pytest.approx(vcpus["value"].sum(), rel=1e-9)
    by_month = (day.group_by(pl.col("period_start").dt.truncate("1mo"), "node_type")
                .agg(pl.col("node_hours_reservable").sum()).sort("period_start", "node_type"))
    assert by_month["node_hours_reservable"].to_list() == pytest.approx(
        month.sort("period_start", "node_type")["node_hours_reservable"].to_list(), rel=1e-12)
    april = month.filter(pl.col("period_start") == dt.date(2025, 4, 1))
    assert april["complete"].all() and april["hours_covered"].to_list() == [30 * 24.0] * april.height
    assert not month.filter(pl.col("period_start") == dt.date(2025, 5, 1))["complete"].any()
    ratio = april.select(pl.col("node_hours_committed") / pl.col("node_hours_reservable") - pl.col("utilization"))
    assert ratio.to_series().abs().max() < 1e-12
    md = (tmp_path / "report-month.md").read_text()
    assert md.startswith("# Node-hours per month") and md.count("\n| rep |") == month.height
    # the unknown pool (no evidence decides the hosts' pool) is reported on its own, and in the total
    for pool in ("ondemand", "unknown"):
        hours = nodes.filter(pl.col("pool") == pool)["value"].sum()
        assert day[f"node_hours_pool_{pool}"].sum() == pytest.approx(hours, rel=1e-9), pool
        assert f"node_hours_pool_{pool}" in md
    assert day["node_hours_pool_unknown"].sum() > 0


def test_report_compare_and_coverage_files_are_byte_identical_on_a_rerun(site, tmp_path):
    root, snapshot, out = site

    def written(target):
        paths = [*run_report(out, period="week", out_dir=target).paths, *run_coverage(out, out_dir=target).paths,
                 *run_compare(out, out_dir=target, figure=False).paths]
        return [path.read_bytes() for path in paths]

    assert written(tmp_path / "a") == written(tmp_path / "b")


def _rows(url: str, table: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY site, period, period_start, node_type")
        result = [tuple(row) for row in rows]
    engine.dispose()
    return result


@pytest.mark.mariadb
def test_report_into_mariadb_is_idempotent_and_replaces_the_reported_periods(site, tmp_path, mariadb_url, db_prefix):
    root, snapshot, out = site
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {db_prefix}kpi")
    engine.dispose()
    url = f"{mariadb_url.rstrip('/')}/{db_prefix}kpi"
    args = ["report", str(out), "--period", "week", "--out", str(tmp_path), "--db-url", url, "--table", "usage_weekly"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    rows = _rows(url, "usage_weekly")
    expected = pl.read_parquet(tmp_path / "report-week.parquet")
    assert len(rows) == expected.height and f"{expected.height} rows written" in first.output
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert _rows(url, "usage_weekly") == rows  # same rows, not twice as many
    # a stale row of a reported week is replaced; a week not reported is kept
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE usage_weekly SET node_hours_total = -1")
        connection.exec_driver_sql("INSERT INTO usage_weekly (site, period, period_start, period_end, node_type) "
                                   "VALUES ('rep', 'week', '2020-01-06', '2020-01-13', 'old')")
    engine.dispose()
    assert CliRunner().invoke(cli, args).exit_code == 0
    after = _rows(url, "usage_weekly")
    assert [row for row in after if row[4] != "old"] == rows and len(after) == len(rows) + 1


def test_report_with_a_bad_database_url_is_one_line(site, tmp_path):
    root, snapshot, out = site
    result = CliRunner().invoke(cli, ["report", str(out), "--out", str(tmp_path), "--db-url", "nosuch://x",
                                      "--table", "t"])
    assert result.exit_code != 0 and "database URL" in str(result.exception or result.output)


def test_coverage_books_are_the_audit_and_unknown_is_the_timeline(site, tmp_path):
    root, snapshot, out = site
    summary = run_coverage(out, out_dir=tmp_path).table
    audit = json.loads((out / "audit.json").read_text())
    # each level's books, split as docs/reports.md says: hours counted elsewhere apart from the rest
    for kind in ("counted", "clipped", "rejected"):
        for level in {entry["level"] for entry in audit[kind] if entry["level"]}:
            mine = summary.filter(pl.col("level") == level)
            kept = sum(e["hours"] for e in audit[kind]
                       if e["level"] == level and e.get("reason") not in COUNTED_ELSEWHERE)
            assert mine[kind].sum() == pytest.approx(kept), (kind, level)
    elsewhere = sum(e["hours"] for kind in ("clipped", "rejected") for e in audit[kind]
                    if e["level"] and e["reason"] in COUNTED_ELSEWHERE)
    booked_at_a_level = summary.filter(pl.col("level") != "none")  # coverage books level-less rows as "none"
    assert elsewhere > 0 and booked_at_a_level["counted_elsewhere"].sum() == pytest.approx(elsewhere)
    timeline = pl.read_parquet(out / "timeline.parquet")
    nodes = timeline.filter(pl.col("resource") == "nodes")
    unknown = nodes.filter((pl.col("node_type") == "unknown") | (pl.col("pool") == "unknown"))
    assert summary.filter(pl.col("level") == "total")["unknown"].sum() == pytest.approx(unknown["value"].sum())
    # the unknown pool is part of it: the site's non-Blazar hosts have no evidence outside their instances
    assert nodes.filter(pl.col("pool") == "unknown")["value"].sum() > 0
    assert (tmp_path / "coverage-summary.md").read_text().startswith("# Coverage")


def test_compare_finds_the_snapshot_reconstruct_recorded(site, tmp_path):
    root, snapshot, out = site
    assert json.loads((out / "audit.json").read_text())["snapshot_dir"] == str(snapshot.resolve())
    result = CliRunner().invoke(cli, ["compare", str(out), "--no-figure", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "comparison.parquet").exists() and "agrees" in result.output
