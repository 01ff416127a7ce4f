"""The reading boundary: drifted schemas are one clear error naming table.column; implausible
times, non-finite inventory and shadow twins are recorded rejections, never silent numbers."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from exporter.cli import main
from exporter.errors import SchemaError
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot, spans_from_tables
from tests.adapters.tables import SNAPSHOT, compute_nodes, instances, leases, t, tables
from tests.reconstruct.test_reconstruct import small_site, write_snapshot

OPTIONS = ReconstructOptions(site="s", start=dt.datetime(2020, 1, 1), step=dt.timedelta(days=1))


def hours(result, level: str) -> float:
    spans = result.spans.filter(pl.col("level") == level)
    closed = spans.with_columns(pl.col("end").fill_null(SNAPSHOT))
    return closed.select(((pl.col("end") - pl.col("start")).dt.total_seconds() / 3600).sum()).item()


def reasons(result) -> dict[tuple[str, str], int]:
    counted = result.rejected.group_by("source_table", "rejection_reason").len()
    return {(r["source_table"], r["rejection_reason"]): r["len"] for r in counted.iter_rows(named=True)}


def cli_reconstruct(snapshot, tmp_path, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", str(snapshot), "--site", "s", "--out", str(tmp_path / "out"), "--from", "2020-01-01",
              "--step", "1d", "--quiet", "--config", str(tmp_path / "none.yaml")])
    return exit_.value.code, capsys.readouterr().err


def test_lease_times_stored_as_epoch_integers_are_one_error_naming_the_column(tmp_path, capsys):
    site = small_site()
    as_epoch = site["blazar.leases"].with_columns(pl.col("start_date", "end_date").dt.epoch("s"))
    snapshot = write_snapshot(tmp_path / "snap", {**site, "blazar.leases": as_epoch})
    code, err = cli_reconstruct(snapshot, tmp_path, capsys)
    assert code != 0 and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert "blazar.leases.start_date" in line and "Int64" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("table", "column"), [("nova.instances", "node"), ("nova.instances", "created_at"),
                                               ("nova.compute_nodes", "created_at")])
def test_a_missing_required_column_is_one_error_naming_it(tmp_path, capsys, table, column):
    site = small_site()
    snapshot = write_snapshot(tmp_path / "snap", {**site, table: site[table].drop(column)})
    code, err = cli_reconstruct(snapshot, tmp_path, capsys)
    assert code != 0
    [line] = err.strip().splitlines()
    assert f"{table}.{column}" in line and "missing" in line


def test_an_empty_instances_table_beside_hosts_is_an_error(tmp_path):
    site = small_site()
    snapshot = write_snapshot(tmp_path / "snap", {**site, "nova.instances": site["nova.instances"].clear()})
    with pytest.raises(SchemaError, match=r"nova\.instances is empty .* nova\.compute_nodes has 2 rows"):
        reconstruct_snapshot(snapshot, OPTIONS)


def test_times_before_2000_are_rejected_as_implausible_not_counted():
    site = small_site()
    honest = spans_from_tables(site, site="s", snapshot_time=SNAPSHOT)
    epoch_zero = site["nova.instances"].with_columns(
        pl.when(pl.col("id") == 2).then(dt.datetime(1970, 1, 1)).otherwise(pl.col("created_at")).alias("created_at"))
    result = spans_from_tables({**site, "nova.instances": epoch_zero}, site="s", snapshot_time=SNAPSHOT)
    assert reasons(result)[("nova.instances", "implausible_time")] == 1
    rejected_hours = hours(honest, "occupied") - hours(result, "occupied")
    assert rejected_hours == pytest.approx((SNAPSHOT - dt.datetime(2020, 3, 1)).total_seconds() / 3600)
    assert "implausible_time" in {e["reason"] for e in result.audit["rejected"]}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_inventory_is_rejected_and_the_run_completes(tmp_path, bad):
    site = small_site()
    nodes = site["nova.compute_nodes"].with_columns(
        pl.when(pl.col("id") == 2).then(bad).otherwise(pl.col("vcpus").cast(pl.Float64)).alias("vcpus"))
    instance_rows = site["nova.instances"].with_columns(
        pl.when(pl.col("id") == 1).then(bad).otherwise(pl.col("memory_mb").cast(pl.Float64)).alias("memory_mb"))
    snapshot = write_snapshot(tmp_path / "snap", {**site, "nova.compute_nodes": nodes,
                                                  "nova.instances": instance_rows})
    rec = reconstruct_snapshot(snapshot, OPTIONS)
    assert reasons(rec)[("nova.compute_nodes", "non_finite_inventory")] == 1
    assert reasons(rec)[("nova.instances", "non_finite_inventory")] == 1
    assert rec.timeline.select(pl.col("value").is_finite().all()).item()


def test_a_row_in_both_a_table_and_its_shadow_twin_counts_once():
    site = small_site()
    honest = spans_from_tables(site, site="s", snapshot_time=SNAPSHOT)
    archived = site["nova.instances"].filter(pl.col("id") == 2)  # copied by an archive run, not yet deleted
    nodes_archived = site["nova.compute_nodes"].filter(pl.col("id") == 1)
    twins = {**site, "nova.shadow_instances": archived, "nova.shadow_compute_nodes": nodes_archived}
    result = spans_from_tables(twins, site="s", snapshot_time=SNAPSHOT)
    assert hours(result, "occupied") == pytest.approx(hours(honest, "occupied"))
    assert hours(result, "total") == pytest.approx(hours(honest, "total"))
    assert reasons(result)[("nova.shadow_instances", "duplicate_entity")] == 1
    assert reasons(result)[("nova.shadow_compute_nodes", "duplicate_entity")] == 1
    kept = result.spans.filter(pl.col("level") == "occupied").get_column("source_table").unique().to_list()
    assert kept == ["nova.instances"]  # the main table's row is the one kept


def test_a_non_finite_reservation_slot_rejects_its_allocation():
    slots = pl.DataFrame({"id": ["S1"], "reservation_id": ["R1"], "vcpus": [math.nan], "memory_mb": [1024.0],
                          "disk_gb": [10.0]})
    result = spans_from_tables({**small_site(), "blazar.instance_reservations": slots}, site="s",
                               snapshot_time=SNAPSHOT)
    assert reasons(result)[("blazar.computehost_allocations", "non_finite_inventory")] == 1
    assert result.spans.filter(pl.col("level") == "committed").height == 0


def test_an_all_null_time_column_in_a_foreign_type_reads_as_absent():
    site = small_site()  # e.g. a pandas-written dump: a never-set deleted_at as all-NaN floats
    nan_deleted = site["blazar.leases"].with_columns(pl.lit(math.nan).alias("deleted_at"))
    honest = spans_from_tables(site, site="s", snapshot_time=SNAPSHOT)
    result = spans_from_tables({**site, "blazar.leases": nan_deleted}, site="s", snapshot_time=SNAPSHOT)
    assert hours(honest, "committed") > 0
    assert hours(result, "committed") == pytest.approx(hours(honest, "committed"))
