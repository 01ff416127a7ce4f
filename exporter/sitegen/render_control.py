"""How the control plane stores the simulated hosts: ``nova.services`` rows, the Blazar host
flag (``computehosts.reservable``) and its history in Chameleon's trigger table
``openstack_audit.audit_blazar_computehosts``.

Services: KVM runs one nova-compute service per hypervisor enrolment (created and deleted with
its compute node); ironic runs a few controllers, each fronting many nodes. Some live KVM
services are disabled at the snapshot. With ``orphan_services`` one nova-compute row has no
compute node at all.

Audit: the triggers exist from ``AUDIT_SINCE``. At deployment every existing row gets a
``backfill`` INSERT (its event time = created_at, its data = the row as it was then) and a
deleted row also a ``backfill`` DELETE; later inserts and every change of a watched column
(``reservable``) write their own row. Soft deletes are not watched, so they leave none.
"""

from __future__ import annotations

import datetime as dt
import json

from exporter.sitegen.model import AUDIT_SINCE, DAY, BlazarHostRow, Host, Rng, World, to_dt
from exporter.sitegen.render import Rendered, RenderedTable, blazar_row_purged, last_update, nova_deleted

SERVICE_COLS = ("id", "host", "binary", "topic", "report_count", "disabled", "disabled_reason", "last_seen_up",
                "forced_down", "version", "uuid", "created_at", "updated_at", "deleted_at", "deleted")
AUDIT_COLS = ("audit_id", "id", "audit_event_type", "audit_event_time", "audit_changed_by", "audit_changed_at", "data")
ORPHAN_SERVICE = {"kvm": "compute-spare-01", "baremetal": "nova-ironic-spare"}
DISABLED_REASON = "AUTO: disk errors, waiting for a replacement"
TRIGGER_USER = "blazar@10.0.0.10"


def service_disabled(host: Host) -> bool:
    """KVM hypervisors an operator has disabled at the snapshot (a fixed share, by position)."""
    return int(host.uid[3:]) % 9 == 4


def disabled_by_node_type(world: World) -> dict[str, int]:
    """Hosts alive at the snapshot whose nova-compute service is disabled, per node type."""
    counts: dict[str, int] = {}
    if world.kind == "kvm":
        for host in world.hosts:
            if host.incarnations and host.incarnations[-1].end is None and service_disabled(host):
                counts[host.node_type.name] = counts.get(host.node_type.name, 0) + 1
    return dict(sorted(counts.items()))


def compute_services(world: World, quirks: frozenset[str]) -> list[tuple]:
    """(id, host, start, end, disabled, hostname or None) of every nova-compute service row."""
    entries = []
    if world.kind == "kvm":
        for host in world.hosts:
            for inc in host.incarnations:
                down = inc.end is None and service_disabled(host)
                entries.append((inc.start, host.service_host, inc.end, down))
    else:
        entries.extend((world.start, name, None, False) for name in world.services)
    if "orphan_services" in quirks:
        entries.append((world.start + DAY, ORPHAN_SERVICE[world.kind], None, True))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [(index, name, start, end, down) for index, (start, name, end, down) in enumerate(entries, start=1)]


def render_services(world: World, quirks: frozenset[str]) -> Rendered:
    rng = Rng(world.start)
    seen = world.end - 7
    rows = []
    for service_id, name, start, end, down in compute_services(world, quirks):
        heartbeat = last_update(start, end, world.end)
        rows.append((service_id, name, "nova-compute", "compute", (heartbeat - start) // 10, int(down),
                     DISABLED_REASON if down else None, heartbeat if end is not None else seen, 0, 30, rng.uuid(),
                     start, heartbeat, end, nova_deleted(service_id, end)))
    for offset, (binary, topic) in enumerate((("nova-conductor", "conductor"), ("nova-scheduler", "scheduler"))):
        service_id = len(rows) + 1
        rows.append((service_id, "controller-01", binary, topic, (world.end - world.start) // 10, 0, None, seen, 0,
                     30, rng.uuid(), world.start, seen, None, 0))
    return {"nova.services": RenderedTable(SERVICE_COLS, rows)}


def flag_at(host: Host, row: BlazarHostRow, at: int) -> tuple[int, int | None]:
    """(``reservable`` of the row at ``at``, time of its last change before ``at``) — the flag
    lives on the primary row; a row ending while the flag is down keeps 0."""
    if row.duplicate:
        return 1, None
    value, changed = 1, None
    for down, up in _row_periods(host, row, at + 1):
        if down <= at:
            value, changed = 0, down
            if up is not None and up <= at and up != row.end:
                value, changed = 1, up
    return value, changed


def _row_periods(host: Host, row: BlazarHostRow, horizon: int) -> list[tuple[int, int | None]]:
    """The flag-down periods that start while ``row`` lives (before ``horizon`` if it is open)."""
    stop = row.end if row.end is not None else horizon
    return [(down, up) for down, up in host.flag_down if row.start <= down < stop]


def audit_rows(world: World, quirks: frozenset[str]) -> list[tuple]:
    """``openstack_audit.audit_blazar_computehosts`` rows (none before the triggers exist)."""
    if world.end <= AUDIT_SINCE:
        return []
    backfill, triggered = [], []
    for host in world.hosts:
        for inc in host.incarnations:
            for row in inc.blazar:
                if blazar_row_purged(row, quirks):
                    continue
                if row.start < AUDIT_SINCE:
                    backfill.append((row.start, "INSERT", "backfill", AUDIT_SINCE, host, row, AUDIT_SINCE))
                    if row.end is not None and row.end <= AUDIT_SINCE:
                        backfill.append((row.end, "DELETE", "backfill", AUDIT_SINCE, host, row, AUDIT_SINCE))
                else:
                    triggered.append((row.start, "INSERT", TRIGGER_USER, row.start, host, row, row.start))
                triggered.extend(_flag_updates(host, row, world.end))
    backfill.sort(key=lambda e: (e[0], e[5].id, e[1]))
    triggered.sort(key=lambda e: (e[0], e[5].id, e[1]))
    return [(audit_id, row.id, kind, when, by, changed, _data(host, row, as_of))
            for audit_id, (when, kind, by, changed, host, row, as_of) in enumerate(backfill + triggered, start=1)]


def _flag_updates(host: Host, row: BlazarHostRow, snapshot: int) -> list[tuple]:
    """UPDATE audit rows for every flip of the row's flag after the triggers exist."""
    if row.duplicate:
        return []
    updates = []
    for down, up in _row_periods(host, row, snapshot):
        for when in (down, up):
            if when is not None and AUDIT_SINCE <= when < snapshot and when != row.end:
                updates.append((when, "UPDATE", TRIGGER_USER, when, host, row, when))
    return updates


def _data(host: Host, row: BlazarHostRow, as_of: int) -> str:
    """The JSON snapshot the trigger takes: the audited columns as the row was at ``as_of``."""
    reservable, _ = flag_at(host, row, as_of)
    deleted = row.end if row.end is not None and row.end <= as_of else None
    return json.dumps({"id": row.id, "hypervisor_hostname": host.hostname, "vcpus": host.vcpus,
                       "memory_mb": host.memory_mb, "local_gb": host.disk_gb, "status": None,
                       "reservable": reservable, "disabled": 0, "created_at": _stamp(row.start),
                       "deleted_at": _stamp(deleted)}, sort_keys=True)


def _stamp(seconds: int | None) -> str | None:
    moment: dt.datetime | None = to_dt(seconds)
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.000000")


def render_audit(world: World, quirks: frozenset[str]) -> Rendered:
    return {"openstack_audit.audit_blazar_computehosts": RenderedTable(AUDIT_COLS, audit_rows(world, quirks))}
