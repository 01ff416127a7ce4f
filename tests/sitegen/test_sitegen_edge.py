"""The edge generator: deterministic, and its tables lose exactly what the truth says they lose."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from exporter.errors import ConfigError
from exporter.sitegen import generate_site
from exporter.sitegen.edge import DEVICE_SOFT_DELETE_SINCE, simulate_edge
from exporter.sitegen.model import Rng, to_dt, ts

START = dt.datetime(2021, 6, 1)


def _world(seed=4):
    return simulate_edge(Rng(seed), devices=12, start=ts(START), end=ts(dt.datetime(2023, 6, 1)))


def test_simulation_is_deterministic_and_keeps_devices_exclusive():
    a, b = _world(), _world()
    assert [(d.id, d.created, d.retired) for d in a.devices] == [(d.id, d.created, d.retired) for d in b.devices]
    assert [(l.id, l.start, l.end) for l in a.leases] == [(l.id, l.start, l.end) for l in b.leases]
    held: dict[str, list[tuple[int, int]]] = {}
    for lease in a.leases:
        for device in lease.devices:
            held.setdefault(device.id, []).append((lease.start, lease.end))
            assert device.created <= lease.start and (device.retired is None or lease.end <= device.retired)
    for windows in held.values():  # a device is in at most one lease at a time
        windows.sort()
        assert all(w1[1] <= w2[0] for w1, w2 in zip(windows, windows[1:]))
    for lease in a.leases:
        for c in lease.containers:
            assert lease.start <= c.created < c.end <= lease.end and c.device in lease.devices


def test_tables_lose_early_retired_devices_and_hard_deleted_containers(tmp_path):
    site = generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=12, years=2, seed=4, start=START, kind="edge",
                         truth_dir=tmp_path / "truth", quirks={"zun_pause_kill"})  # auto_remove off: rows kept
    blazar = sqlite3.connect(tmp_path / "blazar.sqlite")
    rows = blazar.execute("select deleted_at from devices").fetchall()
    soft = to_dt(DEVICE_SOFT_DELETE_SINCE).isoformat(sep=" ")
    assert all(deleted is None or deleted >= soft for (deleted,) in rows)  # nothing retired before May 2022
    zun = sqlite3.connect(tmp_path / "zun.sqlite")
    statuses = {s for (s,) in zun.execute("select distinct status from container")}
    assert "Deleted" in statuses
    assert zun.execute("select count(*) from container where auto_remove != 0").fetchone()[0] == 0
    assert _orphan_actions(zun) == 0  # actions go with their container (ON DELETE CASCADE)
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert truth["device_hours_unrecoverable"]["zun_hard_deleted"]["occupied"] > 0
    assert truth["device_hours_unrecoverable"]["zun_auto_removed"]["occupied"] == 0
    assert site.kind == "edge" and truth["params"]["quirks"] == ["zun_pause_kill"]


def _orphan_actions(zun) -> int:
    return zun.execute("select count(*) from container_actions a left join container c "
                       "on a.container_uuid = c.uuid where c.uuid is null").fetchone()[0]


def test_by_default_zun_removes_the_containers_of_ended_leases_as_chameleons_code_does(tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    generate_site(f"sqlite:///{kept}/main.sqlite", hosts=12, years=2, seed=4, start=START, kind="edge",
                  truth_dir=kept / "truth", quirks={"zun_pause_kill"})
    site = generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=12, years=2, seed=4, start=START, kind="edge",
                         truth_dir=tmp_path / "truth")
    zun = sqlite3.connect(tmp_path / "zun.sqlite")
    rows = zun.execute("select count(*) from container").fetchone()[0]
    assert 0 < rows < 0.1 * sqlite3.connect(kept / "zun.sqlite").execute("select count(*) from container").fetchone()[0]
    assert _orphan_actions(zun) == 0
    # the k8s driver writes its zun-compute's host and auto_remove; a zun device was its own host
    world = simulate_edge(Rng(f"4:edge:12:2:{START.isoformat()}"), devices=12, start=ts(START),
                          end=ts(site.end))
    drivers = {device.name: device.driver for device in world.devices}
    hosts = zun.execute("select host, auto_remove from container").fetchall()
    assert {(host, auto) for host, auto in hosts if host == "edge-k3s"} <= {("edge-k3s", 1)}
    assert all(drivers.get(host) == "zun" and auto == 0 for host, auto in hosts if host != "edge-k3s")
    assert {host == "edge-k3s" for host, _ in hosts} == {True, False}
    # only running leases keep their containers, and the few whose deletion failed
    leases = sqlite3.connect(tmp_path / "blazar.sqlite").execute(
        "select r.id, l.end_date from leases l join reservations r on r.lease_id = l.id").fetchall()
    ends = {reservation: end for reservation, end in leases}
    kept_ended = [1 for (annotations,) in zun.execute("select annotations from container")
                  if ends[json.loads(annotations)["zun.openstack.org/reservation_id"]] < site.end.isoformat(sep=" ")]
    lease_count = sum(1 for end in ends.values() if end < site.end.isoformat(sep=" "))
    assert len(kept_ended) < 0.1 * lease_count
    # failed requests as Zun writes them: action message 'Error', event result 'Error'
    failed = zun.execute("select a.action, a.message, e.result from container_actions a join "
                         "container_actions_events e on e.action_id = a.id where a.message is not null").fetchall()
    assert failed and all(message == result == "Error" for _, message, result in failed)
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    lost = truth["device_hours_unrecoverable"]["zun_auto_removed"]
    assert lost["occupied"] > 0.5 * truth["device_hours"]["occupied"] and lost["stopped"] > 0


def test_edge_refuses_the_oldest_capability_schema(tmp_path):
    with pytest.raises(ConfigError, match="capability"):
        generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=3, years=1, seed=1, kind="edge",
                      capability_schema="capability_name")
