"""CHI@Edge device levels: generated edge sites against their truth, and the rules by hand.

The generator computes the recoverable truth with its own interval arithmetic (exporter.sitegen.
edge_truth); the reconstruction must match it at every level (issue: within 0.5 %; it is exact),
and the audit must quantify what is lost.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.explain import Selection, explain_output
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_into, spans_from_tables
from exporter.reconstruct.outputs import device_summary
from exporter.reports.coverage import coverage_long, coverage_summary
from exporter.sitegen import generate_site

LEVELS = ("total", "reservable", "committed", "maintenance", "occupied", "stopped")
T0 = dt.datetime(2024, 3, 1)


def device_hours(spans: pl.DataFrame, snapshot) -> dict[str, float]:
    hours = (pl.col("end").fill_null(pl.lit(snapshot)) - pl.col("start")).dt.total_seconds() / 3600 * pl.col("nodes")
    return dict(spans.group_by("level").agg(hours.sum()).iter_rows())


# realistic: Chameleon's Zun (every edge quirk: containers of ended leases are gone); kept: the
# operator turned auto_remove off, so the history of ended leases survives, with pause/kill and
# failed actions in it (docs/synthetic-site.md "Edge": which test uses which)
@pytest.mark.parametrize(("schema", "quirks"), [("capability_id", None), ("property_id", {"zun_pause_kill"})],
                         ids=["realistic", "auto_remove_off"])
def test_edge_site_recovers_every_level_of_recoverable_truth(tmp_path, schema, quirks):
    site = generate_site(f"sqlite:///{tmp_path}/site.sqlite", hosts=14, years=2.5, seed=11, kind="edge",
                         start=dt.datetime(2021, 6, 1), truth_dir=tmp_path / "truth", capability_schema=schema,
                         quirks=quirks)
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    extracted = extract_snapshot(SiteConfig(name="edge", display_name="edge", db_url=site.url, kind="edge",
                                            databases=site.databases), tmp_path / "snapshots")
    assert extracted.failed_required == [] and extracted.manifest["tables"]["nova.instances"]["status"] == "missing"
    rec = reconstruct_into(extracted.snapshot_dir, ReconstructOptions(site="edge", start=site.start,
                                                                      snapshot_time=site.end), tmp_path / "out")
    assert rec.spans.height == 0 and rec.devices is not None  # no Nova: everything is a device
    assert not rec.audit["warnings"]  # an edge site is complete without Nova
    kinds = set(rec.devices.select("level", "span_type").unique().rows())
    assert ("maintenance", "device_unreservable") in kinds and ("occupied", "zun_container_occupied") in kinds
    rebuilt = device_hours(rec.devices, site.end)
    for level in LEVELS:
        expected = truth["device_hours_recoverable"][level]
        assert rebuilt.get(level, 0.0) == pytest.approx(expected, rel=0.005), level
    lost = truth["device_hours_unrecoverable"]
    assert lost["retired_before_soft_delete"]["total"] > 0 and lost["zun_hard_deleted"]["occupied"] > 0
    devices = rec.audit["devices"]
    # devices retired before May 2022 have no row: their allocations still count, naming the device
    # by its id under an unknown model; only their life outside those allocations is lost, bounded
    retired = truth["device_history"]["retired_before_soft_delete"]
    assert retired["with_allocations"] > 0
    assert devices["retired_without_row"]["devices"] == retired["with_allocations"]
    assert devices["retired_without_row"]["lost_hours_at_most"] >= retired["lost_total_hours_with_allocations"] > 0
    assert lost["retired_before_soft_delete"]["committed"] == lost["retired_before_soft_delete"]["occupied"] == 0
    assert not [r for r in devices["rejected"] if r["source_table"] == "blazar.device_allocations"
                and r["rejection_reason"] == "missing_fk"]
    unknown = rec.devices.filter((pl.col("node_type") == "unknown") & (pl.col("level") == "committed"))
    assert unknown.height and unknown.get_column("hypervisor_hostname").n_unique() == retired["with_allocations"]
    assert devices["history_complete_since"] >= "2022-05-01"
    assert devices["committed_hours_without_container"] > 0 and devices["multi_device_occupied_hours"] > 0
    _quantifies_what_zun_removed(truth, devices, extracted.snapshot_dir, removed=quirks is None)
    # models come from the machine_name capability in both capability shapes
    truth_spans = pl.read_parquet(tmp_path / "truth" / "truth_spans.parquet")
    models = lambda s: sorted(s.filter(pl.col("level") == "total").select("hypervisor_hostname", "node_type")  # noqa: E731
                              .unique().rows())
    kept = set(rec.devices.filter(pl.col("node_type") != "unknown").get_column("hypervisor_hostname"))
    assert models(rec.devices.filter(pl.col("hypervisor_hostname").is_in(list(kept)))) == [
        m for m in models(truth_spans) if m[0] in kept]
    # the device timeline integrates to the span-hours (checked in the run) and has the model label
    assert set(rec.device_timeline.get_column("node_type").cast(pl.String)) <= {m[1] for m in models(truth_spans)} | {
        "unknown"}
    assert rec.audit["devices"]["timeline"]["negative_leaves"] == 0
    _explains_a_device_cell(rec, tmp_path / "out", site.end)


def _quantifies_what_zun_removed(truth, devices, snapshot_dir, *, removed: bool) -> None:
    """Containers removed with their ended lease leave their reservation without a container row:
    the audit's committed hours without container bound their lost occupied hours. Without
    auto_remove nothing is removed and the actions include pause, kill and failed requests."""
    lost = truth["device_hours_unrecoverable"]
    if removed:  # most occupied history is gone, and the audit says how much at most
        assert lost["zun_auto_removed"]["occupied"] > 0.5 * truth["device_hours"]["occupied"]
        assert devices["committed_hours_without_container"] >= lost["zun_auto_removed"]["occupied"]
        return
    assert lost["zun_auto_removed"] == dict.fromkeys(LEVELS, 0.0)
    actions = pl.read_parquet(snapshot_dir / "zun.container_actions.parquet")
    kinds = set(actions.select("action", pl.col("message").fill_null("")).unique().rows())
    assert {("pause", ""), ("unpause", ""), ("kill", ""), ("stop", "Error")} <= kinds


def _explains_a_device_cell(rec, out, end):
    """`explain --resource devices` answers from the device spans: the cell's value, span by span."""
    at = end - dt.timedelta(days=30)
    cell = rec.device_timeline.filter((pl.col("timestamp") == at.replace(minute=0, second=0, microsecond=0))
                                      & (pl.col("pool") == "reservable") & (pl.col("state") == "active"))
    answer = explain_output(out, at, Selection(pools=("reservable",), states=("active",), resource="devices"),
                            limit=1000)
    assert answer["family"] == "openstack_usage_devices"
    assert answer["value"] == pytest.approx(cell.get_column("value").sum(), abs=1e-9)
    assert sum(span["contribution"] for span in answer["spans"]) == pytest.approx(answer["value"], abs=1e-9)


def _tables(devices, allocations, containers, actions=()):
    """Hand-made device tables: devices (id, name, created), allocations (id, device, reservation),
    containers (id, uuid, reservation, created, status, updated), actions (id, uuid, action, at)."""
    lease = pl.DataFrame({"id": ["L"], "project_id": ["p"], "start_date": [T0], "end_date": [T0 + dt.timedelta(hours=10)]})
    return {
        "blazar.devices": pl.DataFrame({"id": [d[0] for d in devices], "name": [d[1] for d in devices],
                                        "reservable": [1] * len(devices), "created_at": [d[2] for d in devices]}),
        "blazar.device_allocations": pl.DataFrame({"id": [a[0] for a in allocations],
                                                   "device_id": [a[1] for a in allocations],
                                                   "reservation_id": [a[2] for a in allocations]}),
        "blazar.reservations": pl.DataFrame({"id": ["R"], "lease_id": ["L"], "resource_type": ["device"]}),
        "blazar.leases": lease,
        "zun.container": pl.DataFrame(
            {"id": [c[0] for c in containers], "uuid": [c[1] for c in containers],
             "annotations": [None if c[2] is None else json.dumps({"zun.openstack.org/reservation_id": c[2]})
                             for c in containers],
             "created_at": [c[3] for c in containers], "status": [c[4] for c in containers],
             "updated_at": [c[5] for c in containers]}, schema_overrides={"annotations": pl.String}),
        "zun.container_actions": pl.DataFrame(
            {"id": [a[0] for a in actions], "container_uuid": [a[1] for a in actions],
             "action": [a[2] for a in actions], "start_time": [a[3] for a in actions]},
            schema={"id": pl.Int64, "container_uuid": pl.String, "action": pl.String, "start_time": pl.Datetime("us")}),
    }


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_one_container_in_a_two_device_reservation_occupies_both_devices():
    tables = _tables(devices=[("d1", "pi-1", h(-100)), ("d2", "pi-2", h(-100))],
                     allocations=[("a1", "d1", "R"), ("a2", "d2", "R")],
                     containers=[(1, "c1", "R", h(2), "Deleted", h(5)), (2, "c2", None, h(1), "Deleted", h(3))])
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    occupied = result.devices.filter(pl.col("level") == "occupied").sort("hypervisor_hostname")
    # hand-computed: [2 h, 5 h) on each of the two devices; the container with no reservation is rejected
    assert occupied.select("hypervisor_hostname", "start", "end", "source_id").rows() == [
        ("pi-1", h(2), h(5), "1/d1"), ("pi-2", h(2), h(5), "1/d2")]
    rejected = result.rejected.filter(pl.col("source_table") == "zun.container")
    assert rejected.select("source_id", "rejection_reason").rows() == [("2", "missing_fk")]
    committed = result.devices.filter(pl.col("level") == "committed")
    assert committed.height == 2 and set(committed["end"]) == {h(10)}


def test_a_device_is_stopped_only_while_every_container_of_its_reservation_is_stopped():
    # c1 runs 1..9 h, stopped 2..6 h; c2 runs 3..5 h: the device is stopped 2..3 and 5..6 h only
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")],
                     containers=[(1, "c1", "R", h(1), "Deleted", h(9)), (2, "c2", "R", h(3), "Error", h(5))],
                     actions=[(10, "c1", "stop", h(2)), (11, "c1", "start", h(6))])
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    stopped = result.devices.filter(pl.col("level") == "stopped").sort("start")
    assert stopped.select("start", "end").rows() == [(h(2), h(3)), (h(5), h(6))]
    occupied = result.devices.filter(pl.col("level") == "occupied")
    assert occupied.select("start", "end").rows() == [(h(1), h(9))]  # c2 overlaps c1: counted once
    assert result.audit["sources"]  # the books still balance (checked inside spans_from_tables)


def test_a_stop_while_another_container_of_the_reservation_runs_is_counted_elsewhere_whole_or_in_part():
    # c2 runs 2..6 h on the device; c1 (1..9 h) is stopped 3..4 h (wholly while c2 runs) and 5..7 h
    # (partly): both lose that time as duplicate_entity, the first as a rejected row, the second
    # as 1 h clipped -- the device's hours then are c2's, counted as occupied, not lost.
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")],
                     containers=[(1, "c1", "R", h(1), "Deleted", h(9)), (2, "c2", "R", h(2), "Error", h(6))],
                     actions=[(10, "c1", "stop", h(3)), (11, "c1", "start", h(4)),
                              (12, "c1", "stop", h(5)), (13, "c1", "start", h(7))])
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    stopped = result.devices.filter(pl.col("level") == "stopped")
    assert stopped.select("start", "end", "source_id").rows() == [(h(6), h(7), "12/d1")]
    rejected = result.rejected.filter(pl.col("source_table") == "zun.container_actions")
    assert rejected.select("source_id", "rejection_reason").rows() == [("10/d1", "duplicate_entity")]
    clipped = [(e["reason"], e["hours"]) for e in result.audit["clipped"]
               if e["source_table"] == "zun.container_actions"]
    assert clipped == [("duplicate_entity", pytest.approx(1.0))]
    # coverage books both stops' hours under c2 (1 h rejected, 1 h clipped) as counted elsewhere:
    # neither lost nor dropped
    no_timeline = pl.DataFrame(schema={"site": pl.String, "timestamp": pl.Datetime("us", "UTC"),
                                       "node_type": pl.String, "resource": pl.String, "pool": pl.String,
                                       "state": pl.String, "value": pl.Float64})
    coverage = coverage_summary(coverage_long(result.audit, no_timeline, step_seconds=3600))
    stopped_year = coverage.filter(pl.col("level") == "stopped").row(0, named=True)
    assert (stopped_year["rejected"], stopped_year["clipped"]) == (0.0, 0.0)
    assert stopped_year["counted_elsewhere"] == pytest.approx(2.0)


def _rowless_device_tables() -> dict[str, pl.DataFrame]:
    """d1 has a row, soft-deleted at 50 h; g1 (leases [0, 10) h and [20, 25) h, a container in the
    second) and g2 (lease [60, 70) h) have none."""
    leases = {"L1": (0, 10), "L2": (20, 25), "L3": (60, 70)}
    return {
        "blazar.devices": pl.DataFrame({"id": ["d1"], "name": ["pi-1"], "reservable": [1], "created_at": [h(-100)],
                                        "deleted_at": [h(50)]}),
        "blazar.device_allocations": pl.DataFrame({"id": ["a1", "a2", "a3"], "device_id": ["g1", "g1", "g2"],
                                                   "reservation_id": ["R1", "R2", "R3"],
                                                   "created_at": [h(-1), h(19), h(59)],
                                                   "deleted_at": [h(10), h(25), h(70)]}),
        "blazar.reservations": pl.DataFrame({"id": ["R1", "R2", "R3"], "lease_id": ["L1", "L2", "L3"],
                                             "resource_type": ["device"] * 3}),
        "blazar.leases": pl.DataFrame({"id": list(leases), "project_id": ["p"] * 3,
                                       "start_date": [h(a) for a, _ in leases.values()],
                                       "end_date": [h(b) for _, b in leases.values()]}),
        "zun.container": pl.DataFrame({"id": [1], "uuid": ["c1"], "created_at": [h(21)], "status": ["Deleted"],
                                       "updated_at": [h(24)],
                                       "annotations": [json.dumps({"zun.openstack.org/reservation_id": "R2"})]}),
    }


def test_a_device_retired_before_soft_delete_counts_from_its_first_to_its_last_allocation():
    # d1 has a row, soft-deleted at 50 h: from then on the devices table is known to keep retired
    # rows. g1 has no row, but allocations of leases [0, 10) h and [20, 25) h name it: it existed
    # (and was reservable) over [0, 25) h, model unknown. g2's allocation [60, 70) h comes after 50 h:
    # a missing row then is no retirement, so it stays missing_fk.
    result = spans_from_tables(_rowless_device_tables(), site="t", snapshot_time=h(100))
    spans = result.devices.filter(pl.col("hypervisor_hostname") == "g1").sort("level", "start")
    assert spans.select("level", "start", "end", "node_type", "source_table").rows() == [
        ("committed", h(0), h(10), "unknown", "blazar.device_allocations"),
        ("committed", h(20), h(25), "unknown", "blazar.device_allocations"),
        ("occupied", h(21), h(24), "unknown", "zun.container"),
        ("reservable", h(0), h(25), "unknown", "inference"),
        ("total", h(0), h(25), "unknown", "inference")]
    assert set(spans.filter(pl.col("source_table") == "inference").get_column("span_type")) == {
        "inferred_device", "inferred_device_reservable"}
    # known from the first allocation row's creation until the last one's deletion
    assert set(spans.filter(pl.col("source_table") == "inference").select("known_from", "known_until").rows()) == {
        (h(-1), h(25))}
    rejected = result.rejected.filter(pl.col("source_table") == "blazar.device_allocations")
    assert rejected.select("source_id", "rejection_reason").rows() == [("a3", "missing_fk")]
    # counted 25 h; lost at most 100 h before (back to d1's enrolment) + 25 h after (up to 50 h)
    assert result.audit["devices"]["retired_without_row"] == {
        "devices": 1, "counted_hours": 25.0, "evidence_since": h(-100).isoformat(), "lost_hours_at_most": 125.0}


@pytest.mark.parametrize(("configured", "retired", "missing_fk"), [
    (None, {"g1": (h(0), h(25))}, ["a3"]),  # from the data: d1's deleted_at, 50 h
    (h(15), {"g1": (h(0), h(10))}, ["a2", "a3"]),  # earlier: g1's lease ending at 25 h is after it
    (h(80), {"g1": (h(0), h(25)), "g2": (h(60), h(70))}, []),  # later: g2's lease [60, 70) h is before it
    ("never", {"g1": (h(0), h(25)), "g2": (h(60), h(70))}, []),  # never complete: every ended lease
])
def test_configured_device_history_complete_since_decides_which_rowless_allocations_count(configured, retired,
                                                                                           missing_fk):
    result = spans_from_tables(_rowless_device_tables(), site="t", snapshot_time=h(100),
                               device_history_complete_since=configured)
    inferred = result.devices.filter((pl.col("source_table") == "inference") & (pl.col("level") == "total"))
    assert {row[0]: row[1:] for row in inferred.select("hypervisor_hostname", "start", "end").rows()} == retired
    rejected = result.rejected.filter(pl.col("source_table") == "blazar.device_allocations")
    assert rejected.filter(pl.col("rejection_reason") == "missing_fk").get_column("source_id").sort().to_list() \
        == missing_fk
    audit = result.audit["devices"]
    effective = None if configured in (None, "never") else configured.isoformat()
    assert audit["history_complete_since"] == (h(50).isoformat() if configured is None else effective)
    assert audit["history_decided_by"] == ("data" if configured is None else "config")
    assert audit["history_derived_since"] == h(50).isoformat()  # the data's answer is kept beside it
    assert audit["history_derived_from"] == "blazar.devices id d1 (earliest deleted_at)"
    printed = device_summary(audit)[1]
    assert ("configured; the data says 2024-03-03T02:00:00" in printed) == (configured is not None)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_stop_actions_at_the_same_moment_give_the_same_spans_in_any_row_order(order):
    # c1 and c2 of one reservation are stopped at the same second (one request stopping both) and
    # resumed together: the device's stopped span is one, and which row it names must not depend
    # on the order of the rows (an unstable sort on the time alone picked either)
    # ids 9 and 10: in id order, not in the order of their text ("10" < "9")
    actions = [(9, "c1", "stop", h(2)), (10, "c2", "stop", h(2))]
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")],
                     containers=[(1, "c1", "R", h(1), "Deleted", h(9)), (2, "c2", "R", h(1), "Deleted", h(9))],
                     actions=[actions[i] for i in order] + [(12, "c1", "start", h(4)), (13, "c2", "start", h(4))])
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    stopped = result.devices.filter(pl.col("level") == "stopped")
    assert stopped.select("start", "end", "source_id").rows() == [(h(2), h(4), "9/d1")]
    clipped = result.rejected.filter(pl.col("source_table") == "zun.container_actions")
    assert clipped.get_column("source_id").to_list() == ["10/d1"]  # the other one, counted once


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_two_containers_of_a_reservation_in_one_window_occupy_the_device_once_in_any_row_order(order):
    # c1 and c2 of one reservation run over the same hours: the device is occupied once, by the
    # first in row id order (9 before 10, though "10" < "9" as text), whatever order the rows come in
    containers = [(10, "c1", "R", h(1), "Deleted", h(9)), (9, "c2", "R", h(1), "Deleted", h(9))]
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")],
                     containers=[containers[i] for i in order])
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    occupied = result.devices.filter(pl.col("level") == "occupied")
    assert occupied.select("start", "end", "source_id").rows() == [(h(1), h(9), "9/d1")]
    duplicate = result.rejected.filter(pl.col("source_table") == "zun.container")
    assert duplicate.select("source_id", "rejection_reason").rows() == [("10/d1", "duplicate_entity")]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_a_device_model_written_twice_at_the_same_moment_is_the_same_in_any_row_order(order):
    # two machine_name rows of one device with the same time: the later row id wins, whatever
    # the rows' order (a sort on the time alone kept them in the order they came)
    caps = [("x1", "d1", "c", "raspberrypi3-64", h(-50)), ("x2", "d1", "c", "raspberrypi4-64", h(-50))]
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[], containers=[]) | {
        "blazar.device_extra_capabilities": pl.DataFrame(
            [caps[i] for i in order], schema=["id", "device_id", "capability_id", "capability_value", "created_at"],
            orient="row"),
        "blazar.extra_capabilities": pl.DataFrame({"id": ["c"], "capability_name": ["machine_name"]})}
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    assert set(result.devices.get_column("node_type")) == {"raspberrypi4-64"}


def test_failed_actions_stop_nothing_and_kill_and_unpause_count():
    # stop at 2 h failed (its event's result is Error), kill at 3 h stops, unpause at 5 h resumes,
    # pause at 6 h failed (its message is Error): stopped [3, 5) h only
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")],
                     containers=[(1, "c1", "R", h(1), "Deleted", h(9))],
                     actions=[(10, "c1", "stop", h(2)), (11, "c1", "kill", h(3)), (12, "c1", "unpause", h(5)),
                              (13, "c1", "pause", h(6))])
    tables["zun.container_actions"] = tables["zun.container_actions"].with_columns(
        message=pl.Series([None, None, None, "Error"], dtype=pl.String))
    tables["zun.container_actions_events"] = pl.DataFrame(
        {"id": [1, 2, 3], "action_id": [10, 11, 12], "result": ["Error", "Success", "Success"]})
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    stopped = result.devices.filter(pl.col("level") == "stopped")
    assert stopped.select("start", "end").rows() == [(h(3), h(5))]


@pytest.mark.parametrize("text_side", ["zun.container_actions", "zun.container_actions_events", None])
def test_a_failed_action_is_found_whether_its_ids_are_stored_as_integers_or_text(text_side):
    # the action ids are joined as integers (exporter.adapters.common.JOIN_ID); a dump may store one
    # side as text: both are then compared as text. The stop at 2 h failed (its event says Error);
    # the event of action "07" names no action (7 is spelt "7"), so the stop at 3 h still counts.
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")],
                     containers=[(1, "c1", "R", h(1), "Deleted", h(9))],
                     actions=[(10, "c1", "stop", h(2)), (7, "c1", "stop", h(3)), (12, "c1", "start", h(5))])
    tables["zun.container_actions_events"] = pl.DataFrame({"id": [1, 2], "action_id": ["10", "07"],
                                                           "result": ["Error", "Error"]})
    if text_side != "zun.container_actions_events":  # integers, but for the one text id no integer spells
        tables["zun.container_actions_events"] = tables["zun.container_actions_events"].filter(
            pl.col("action_id") == "10").with_columns(pl.col("action_id").cast(pl.Int64))
    if text_side == "zun.container_actions":
        tables[text_side] = tables[text_side].with_columns(pl.col("id").cast(pl.String))
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    stopped = result.devices.filter(pl.col("level") == "stopped")
    assert stopped.select("start", "end", "source_id").rows() == [(h(3), h(5), "7/d1")], text_side


def test_an_unreservable_device_is_maintenance_only_where_no_lease_holds_it():
    # d1 is marked unreservable at 4 h, inside its allocation [0, 10) h: the lease keeps [4, 10) h
    # (as for a host's maintenance mask, under_commitment), maintenance runs from 10 h on.
    tables = _tables(devices=[("d1", "pi-1", h(-100))], allocations=[("a1", "d1", "R")], containers=[])
    tables["blazar.devices"] = tables["blazar.devices"].with_columns(
        reservable=pl.lit(0), updated_at=pl.lit(h(4)))
    result = spans_from_tables(tables, site="t", snapshot_time=h(20))
    spans = result.devices.sort("level", "start")
    assert spans.filter(pl.col("level") == "committed").select("start", "end").rows() == [(h(0), h(10))]
    assert spans.filter(pl.col("level") == "maintenance").select("start", "end").rows() == [(h(10), None)]
    clipped = [e for e in result.audit["clipped"] if e["reason"] == "under_commitment"]
    assert [e["source_table"] for e in clipped] == ["blazar.devices"]
