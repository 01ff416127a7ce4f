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
                         truth_dir=tmp_path / "truth")
    blazar = sqlite3.connect(tmp_path / "blazar.sqlite")
    rows = blazar.execute("select deleted_at from devices").fetchall()
    soft = to_dt(DEVICE_SOFT_DELETE_SINCE).isoformat(sep=" ")
    assert all(deleted is None or deleted >= soft for (deleted,) in rows)  # nothing retired before May 2022
    zun = sqlite3.connect(tmp_path / "zun.sqlite")
    statuses = {s for (s,) in zun.execute("select distinct status from container")}
    assert "Deleted" in statuses
    orphans = zun.execute("select count(*) from container_actions a left join container c "
                          "on a.container_uuid = c.uuid where c.uuid is null").fetchone()[0]
    assert orphans == 0  # actions go with their container (ON DELETE CASCADE)
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert truth["device_hours_unrecoverable"]["zun_hard_deleted"]["occupied"] > 0
    assert site.kind == "edge"


def test_edge_refuses_the_oldest_capability_schema(tmp_path):
    with pytest.raises(ConfigError, match="capability"):
        generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=3, years=1, seed=1, kind="edge",
                      capability_schema="capability_name")
