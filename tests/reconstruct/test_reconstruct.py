"""Orchestrator, snapshot loading, outputs, invariants and the CLI on tiny hand-built snapshots."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json

import polars as pl
import pytest

from exporter.reconstruct.audit import check_invariants
from exporter.cli import main
from exporter.errors import InvariantViolation, SnapshotError
from exporter.reconstruct.pipeline import (
    ReconstructOptions, reconstruct_into, reconstruct_snapshot, spans_from_tables,
)
from exporter.snapshots import file_sha256
from tests.adapters.tables import (
    SNAPSHOT, allocations, compute_nodes, computehosts, instances, leases, request_specs, reservations, spec, t,
    tables,
)

OPTIONS = ReconstructOptions(site="s", start=dt.datetime(2020, 1, 1), step=dt.timedelta(hours=6))


def small_site() -> dict[str, pl.DataFrame]:
    return tables(
        compute_nodes=compute_nodes({"id": 1, "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")},
                                    {"id": 2, "hypervisor_hostname": "h2", "created_at": t("01-01 00:00")}),
        computehosts=computehosts({"id": "7", "hypervisor_hostname": "h1", "created_at": t("01-01 00:00")}),
        leases=leases({"id": "L1", "start_date": t("03-01 00:00"), "end_date": t("03-05 00:00")}),
        reservations=reservations({"id": "R1", "lease_id": "L1"}),
        computehost_allocations=allocations({"id": "A1", "compute_host_id": "7", "reservation_id": "R1",
                                             "created_at": t("02-20 00:00")}),
        instances=instances(
            {"id": 1, "uuid": "i1", "node": "h1", "created_at": t("03-01 01:00"), "launched_at": t("03-01 01:20"),
             "terminated_at": t("03-02 00:00")},
            {"id": 2, "uuid": "i2", "node": "h2", "created_at": t("03-01 00:00"), "launched_at": t("03-01 00:10")},
            {"id": 3, "uuid": "i3", "node": "h2", "created_at": t("03-01 00:00"), "launched_at": None}),
        request_specs=request_specs({"instance_uuid": "i1", "spec": spec(hint="R1")}),
    )


def write_snapshot(directory, frames, manifest_time=None):
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.write_parquet(directory / f"{name}.parquet")
    if manifest_time:  # what extract records for a complete snapshot
        entries = {name: {"file": f"{name}.parquet", "status": "ok", "optional": False,
                          "sha256": file_sha256(directory / f"{name}.parquet")} for name in frames}
        (directory / "manifest.json").write_text(json.dumps({
            "tables": entries, "complete": True, "finished_at": manifest_time.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    return directory


def test_every_row_is_used_or_rejected_and_hours_balance():
    result = spans_from_tables(small_site(), site="s", snapshot_time=SNAPSHOT)
    for entry in result.audit["sources"]:
        assert entry["rows_in"] == entry["rows_used"] + entry["rows_rejected"]
    occupied = next(e for e in result.audit["sources"] if e["level"] == "occupied")
    assert (occupied["rows_in"], occupied["rows_used"], occupied["rows_rejected"]) == (3, 2, 1)


def test_corrupted_accounting_fails_loudly():
    audit = spans_from_tables(small_site(), site="s", snapshot_time=SNAPSHOT).audit
    check_invariants(audit)
    lost_hours = copy.deepcopy(audit)
    lost_hours["sources"][0]["hours_counted"] -= 1.0
    with pytest.raises(InvariantViolation, match="span-hours in"):
        check_invariants(lost_hours)
    lost_row = copy.deepcopy(audit)
    lost_row["sources"][0]["rows_in"] += 1
    with pytest.raises(InvariantViolation, match="rows in"):
        check_invariants(lost_row)


def test_timeline_that_does_not_conserve_span_hours_fails_loudly(tmp_path):
    rec = reconstruct_snapshot(write_snapshot(tmp_path / "snap", small_site()), OPTIONS)
    broken = copy.deepcopy(rec.audit)
    total_nodes = next(e for e in broken["timeline"]["conservation"]
                       if (e["level"], e["resource"]) == ("total", "nodes"))
    total_nodes["timeline_hours"] += 1.0  # one node-hour the spans do not have
    with pytest.raises(InvariantViolation, match="hours not conserved"):
        check_invariants(broken)


def test_timeline_hours_equal_span_hours_per_level(tmp_path):
    options = dataclasses.replace(OPTIONS, snapshot_time=SNAPSHOT)
    rec = reconstruct_snapshot(write_snapshot(tmp_path / "snap", small_site()), options)
    nodes = {}
    for e in rec.audit["timeline"]["conservation"]:
        if e["resource"] == "nodes":
            name = e["level"] if e["booking"] is None else f"{e['level']}.{e['booking']}"
            nodes[name] = {k: nodes.get(name, {}).get(k, 0.0) + e[k] for k in ("span_hours", "timeline_hours")}
    # h1 + h2 exist from Jan 1 up to the snapshot, 2020-12-31 00:00 (a grid point: the window end).
    window_hours = (dt.datetime(2020, 12, 31) - dt.datetime(2020, 1, 1)).total_seconds() / 3600
    assert nodes["total"]["timeline_hours"] == pytest.approx(2 * window_hours)
    assert nodes["committed"]["timeline_hours"] == pytest.approx(96.0)
    assert nodes["occupied.reservation"]["timeline_hours"] == pytest.approx(23.0)


def test_outputs_are_byte_identical_across_runs(tmp_path):
    snapshot = write_snapshot(tmp_path / "snap", small_site())
    for name in ("a", "b"):
        reconstruct_into(snapshot, OPTIONS, tmp_path / name)
    for file in ("spans.parquet", "rejected.parquet", "timeline.parquet", "audit.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_snapshot_time_comes_from_the_manifest_else_the_latest_timestamp(tmp_path):
    with_manifest = write_snapshot(tmp_path / "m", small_site(), manifest_time=dt.datetime(2020, 6, 1))
    rec = reconstruct_snapshot(with_manifest, OPTIONS)
    assert (rec.audit["snapshot_time"], rec.audit["snapshot_time_source"]) == ("2020-06-01T00:00:00", "manifest")
    dump = reconstruct_snapshot(write_snapshot(tmp_path / "d", small_site()), OPTIONS)
    # i1's terminated_at is the latest time recorded; the lease's end (03-05) is only planned
    assert (dump.audit["snapshot_time"], dump.audit["snapshot_time_source"]) == ("2020-03-02T00:00:00",
                                                                                  "max_timestamp")


def test_a_lease_planned_to_end_after_the_dump_does_not_move_the_snapshot_time(tmp_path):
    frames = small_site()
    frames["blazar.leases"] = leases({"id": "L1", "start_date": t("03-01 00:00"), "end_date": dt.datetime(2030, 1, 1)})
    dump = reconstruct_snapshot(write_snapshot(tmp_path / "d", frames), OPTIONS)
    assert dump.audit["snapshot_time"] == "2020-03-02T00:00:00"
    committed = dump.spans.filter(pl.col("level") == "committed")
    assert committed["end"].to_list() == [t("03-02 00:00")]  # cut at the snapshot, as any span running past it


def test_a_snapshot_failing_its_check_raises_the_checks_error_not_the_spans_stages(tmp_path):
    # the check runs beside the loading and the spans stage: an unreadable file fails those first
    snapshot = write_snapshot(tmp_path / "snap", small_site(), manifest_time=dt.datetime(2020, 6, 1))
    (snapshot / "nova.instances.parquet").write_bytes(b"not parquet")
    with pytest.raises(SnapshotError) as failure:
        reconstruct_snapshot(snapshot, OPTIONS)
    assert "nova.instances.parquet differs from the sha256 in the manifest" in str(failure.value)  # not a note


def test_a_snapshot_used_although_altered_says_so_first_in_the_warnings(tmp_path):
    snapshot = write_snapshot(tmp_path / "snap", small_site(), manifest_time=dt.datetime(2020, 6, 1))
    instances = pl.read_parquet(snapshot / "nova.instances.parquet")
    instances.head(1).write_parquet(snapshot / "nova.instances.parquet")
    with pytest.raises(SnapshotError, match="differs from the sha256"):
        reconstruct_snapshot(snapshot, OPTIONS)
    rec = reconstruct_snapshot(snapshot, dataclasses.replace(OPTIONS, allow_incomplete=True))
    assert "nova.instances.parquet differs from the sha256" in rec.audit["warnings"][0]


def test_missing_blazar_leaves_hosts_unknown_unless_the_site_says_its_history_is_complete():
    frames = {name: frame for name, frame in small_site().items() if not name.startswith("blazar.")}
    result = spans_from_tables(frames, site="s", snapshot_time=SNAPSHOT)
    assert set(result.spans["level"]) == {"total", "occupied", "ondemand"}
    assert set(result.spans.filter(pl.col("level") == "occupied")["pool"]) == {"ondemand"}
    assert any("blazar.computehosts is missing" in w for w in result.audit["warnings"])
    assert result.audit["blazar_history"]["complete_since"] is None
    span_hours = (pl.col("end").fill_null(SNAPSHOT) - pl.col("start")).dt.total_seconds() / 3600 * pl.col("nodes")
    hours = lambda spans, level: float(spans.filter(pl.col("level") == level).select(span_hours.sum()).item())  # noqa: E731
    # only the instances' time is evidenced on-demand; the rest of the hosts' time is unknown
    assert hours(result.spans, "ondemand") < hours(result.spans, "total")
    # a cloud without Blazar says so: its (empty) Blazar history is complete, every host on-demand
    told = spans_from_tables(frames, site="s", snapshot_time=SNAPSHOT, blazar_complete_since=dt.datetime(2000, 1, 1))
    assert told.audit["blazar_history"]["decided_by"] == "config"
    assert hours(told.spans, "ondemand") == pytest.approx(hours(told.spans, "total"), rel=1e-12)


def test_missing_essential_table_or_corrupt_file_is_a_snapshot_error(tmp_path):
    frames = small_site()
    del frames["nova.instances"]
    with pytest.raises(SnapshotError, match="lacks nova.instances"):
        reconstruct_snapshot(write_snapshot(tmp_path / "a", frames), OPTIONS)
    corrupt = write_snapshot(tmp_path / "b", small_site())
    (corrupt / "blazar.leases.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SnapshotError, match="blazar.leases.parquet: unreadable"):
        reconstruct_snapshot(corrupt, OPTIONS)


def test_cli_writes_outputs_and_prints_the_summary(tmp_path, capsys):
    snapshot = write_snapshot(tmp_path / "snap", small_site())
    main(["reconstruct", str(snapshot), "--site", "s", "--out", str(tmp_path / "out"), "--from", "2020-01-01",
          "--step", "1d", "--snapshot-time", "2020-12-31", "--quiet", "--config", str(tmp_path / "none.yaml")])
    out = capsys.readouterr().out
    assert "occupied/nova.instances" in out and "never_launched=1" in out
    timeline = pl.read_parquet(tmp_path / "out" / "timeline.parquet")
    assert timeline["timestamp"].max() == dt.datetime(2020, 12, 30)
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["site"] == "s"


def test_cli_reports_a_bad_snapshot_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstruct", str(tmp_path / "nowhere"), "--site", "s", "--out", str(tmp_path / "out"),
              "--config", str(tmp_path / "none.yaml")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "is not a directory" in err and "Traceback" not in err


def test_cli_resolves_the_newest_snapshot_from_the_config(tmp_path, capsys):
    write_snapshot(tmp_path / "data" / "s" / "20200101T000000Z", small_site())
    write_snapshot(tmp_path / "data" / "s" / "20200301T000000Z", small_site(), manifest_time=dt.datetime(2020, 4, 1))
    config = tmp_path / "sites.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nsites:\n  s:\n    db_url: sqlite:///x.sqlite\n"
                      "    history_start: 2020-02-01\n")
    main(["reconstruct", "--site", "s", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["snapshot_time"] == "2020-04-01T00:00:00"
    assert audit["timeline"]["start"] == "2020-02-01T00:00:00"


def test_text_timestamps_and_integer_ids_give_the_same_spans():
    # upstream dumps and SQLite reads may carry datetimes as text and ids as integers
    def as_text(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S") for c, t in frame.schema.items()
                                  if isinstance(t, pl.Datetime))
    typed = spans_from_tables(small_site(), site="s", snapshot_time=SNAPSHOT).spans
    texty = spans_from_tables({k: as_text(v) for k, v in small_site().items()}, site="s",
                              snapshot_time=SNAPSHOT).spans
    assert texty.equals(typed)


def test_a_grid_too_large_is_refused_with_its_size_before_it_is_built(tmp_path, capsys):
    snapshot = write_snapshot(tmp_path / "snap", small_site())
    with pytest.raises(SystemExit) as exit_:  # 1 s steps over 365 days x 8 leaves x 5 resources
        main(["reconstruct", str(snapshot), "--site", "s", "--out", str(tmp_path / "out"), "--from", "2020-01-01",
              "--step", "1s", "--snapshot-time", "2020-12-31", "--quiet", "--config", str(tmp_path / "none.yaml")])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "the timeline would have 1,419,120,000 rows (31,536,000 steps" in line
    assert "more than the limit of 100,000,000" in line and not (tmp_path / "out").exists()
