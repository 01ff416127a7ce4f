"""Bare-metal (ironic) site: physical:host leases, allocations and the instances inside them."""

from __future__ import annotations

import bisect
import math

from exporter.sitegen.instances import BAREMETAL_FLAVOR, Owner
from exporter.sitegen.model import (
    DAY,
    HOUR,
    MINUTE,
    Allocation,
    BlazarHostRow,
    Host,
    Lease,
    Rng,
    World,
)
from exporter.sitegen.site_base import SiteSimulation, enrolled_row, flag_down_for

MAINTENANCE = Owner("maintenance", "admin")
TARGET_COMMITTED = 0.55  # fraction of reservable node-hours users try to book
MEAN_NODES = 1.85
NODES_CHOICES, NODES_CUMULATIVE = (1, 2, 3, 4), (0.5, 0.75, 0.9, 1.0)
RUNS_CHOICES, RUNS_CUMULATIVE = (1, 2, 3), (0.7, 0.9, 1.0)


class Calendar:
    """Per-host booked intervals; answers 'is this host free over [start, end)?'."""

    def __init__(self) -> None:
        self.starts: dict[int, list[int]] = {}
        self.ends: dict[int, list[int]] = {}

    def free(self, host: Host, start: int, end: int) -> bool:
        starts = self.starts.get(id(host), [])
        at = bisect.bisect_left(starts, start)
        if at > 0 and self.ends[id(host)][at - 1] > start:
            return False
        return not (at < len(starts) and starts[at] < end)

    def book(self, host: Host, start: int, end: int) -> None:
        starts = self.starts.setdefault(id(host), [])
        ends = self.ends.setdefault(id(host), [])
        at = bisect.bisect_left(starts, start)
        starts.insert(at, start)
        ends.insert(at, end)


class BaremetalSimulation(SiteSimulation):
    kind = "baremetal"
    build_seconds = (10 * MINUTE, 30 * MINUTE)

    def __init__(self, rng: Rng, *, hosts: int, start: int, end: int, quirks: frozenset[str]) -> None:
        super().__init__(rng, hosts=hosts, start=start, end=end, quirks=quirks, project_count=max(8, hosts // 2 + 10))
        self.calendar = Calendar()
        self.by_type: dict[str, list[Host]] = {}
        for host in self.hosts:
            if host.reservable:
                self.by_type.setdefault(host.node_type.name, []).append(host)

    def run(self) -> World:
        for when, type_name in self._arrivals():
            self._request_lease(when, type_name)
        for lease in self.leases:
            for alloc in list(lease.allocations):
                self._fill_allocation(alloc)
        self._ondemand_instances()
        return self.world()

    def _arrivals(self) -> list[tuple[int, str]]:
        """Lease request times per node type (Poisson), merged in time order."""
        rng, mean_hours = self.rng, self._mean_lease_hours()
        arrivals = []
        for type_name, hosts in sorted(self.by_type.items()):
            rate = TARGET_COMMITTED * len(hosts) / (MEAN_NODES * mean_hours * HOUR)
            t = float(self.start)
            while True:
                t += rng.expovariate(rate)
                if t >= self.end - MINUTE:  # rows created in the last minute could postdate now
                    break
                arrivals.append((int(t), type_name))
        arrivals.sort()
        return arrivals

    @staticmethod
    def _mean_lease_hours() -> float:
        return 0.1 * 8 + 0.9 * (168 - 24) / math.log(168 / 24)

    def _lease_hours(self) -> int:
        rng = self.rng
        if rng.random() < 0.1:
            return rng.randint(2, 23)
        return int(math.exp(rng.uniform(math.log(24), math.log(168))))

    def _request_lease(self, created: int, type_name: str) -> None:
        rng, quirks = self.rng, self.quirks
        maintenance = "maintenance_leases" in quirks and rng.random() < 0.04
        owner = MAINTENANCE if maintenance else rng.choice(rng.choice(self.projects))
        nodes = 1 if maintenance else rng.pick(NODES_CHOICES, NODES_CUMULATIVE)
        start = (created // MINUTE + 1) * MINUTE
        if "advance_bookings" in quirks and not maintenance and rng.random() < 0.2:
            start += rng.between(HOUR, 14 * DAY) // MINUTE * MINUTE
        end = start + (rng.between(4 * HOUR, 3 * DAY) if maintenance else self._lease_hours() * HOUR)
        chosen = self._free_hosts(type_name, start, end, nodes, created=created)
        if not chosen:  # Blazar refuses; a user short of nodes settles for what is free
            return
        nodes = len(chosen)
        lease = Lease(rng.uuid(), f"lease-{len(self.leases) + 1}", owner.project_id, owner.user_id,
                      created, start, end, None, maintenance, rng.uuid(), resource_id=rng.uuid())
        lease.amount = nodes
        for host, row in chosen:
            self.calendar.book(host, start, end)
            lease.allocations.append(Allocation(rng.uuid(), lease, host, row, created + rng.between(0, 3), None))
        if start > created + HOUR:
            self._count("advance_bookings")
        if maintenance:
            self._count("maintenance_leases")
        self._lifecycle(lease, type_name)
        self.leases.append(lease)

    def _free_hosts(self, type_name: str, start: int, end: int, nodes: int,
                    created: int) -> list[tuple[Host, BlazarHostRow]]:
        candidates = self.by_type[type_name]
        offset = self.rng.randrange(len(candidates))
        chosen = []
        for step in range(len(candidates)):
            host = candidates[(offset + step) % len(candidates)]
            if not self.calendar.free(host, start, end) or flag_down_for(host, created, start, end):
                continue
            row = enrolled_row(host, start, end)
            if row is not None:
                chosen.append((host, row))
                if len(chosen) == nodes:
                    break
        return chosen

    def _lifecycle(self, lease: Lease, type_name: str) -> None:
        """Early deletion, reallocation and end-of-lease soft deletes."""
        rng = self.rng
        if "early_deleted_leases" in self.quirks and rng.random() < 0.12:
            deleted = rng.between(lease.created + MINUTE, lease.end)
            if deleted < self.end:
                lease.deleted = deleted
                self._count("early_deleted_leases")
        stop = lease.end if lease.deleted is None else lease.deleted
        if ("reallocations" in self.quirks and not lease.maintenance and rng.random() < 0.05
                and stop - lease.start > 2 * HOUR):
            self._reallocate(lease, type_name, rng.between(lease.start + HOUR, stop - HOUR))
        for alloc in lease.allocations:
            if alloc.deleted is None:
                closing = stop if lease.deleted is not None else stop + rng.between(5, 90)
                alloc.deleted = closing if closing < self.end else None

    def _reallocate(self, lease: Lease, type_name: str, when: int) -> None:
        if when >= self.end:
            return
        old = self.rng.choice(lease.allocations)
        old.deleted = when
        self._count("reallocations")
        replacement = self._free_hosts(type_name, when, lease.end, 1, created=when)
        if not replacement:
            lease.degraded = True
            return
        host, row = replacement[0]
        self.calendar.book(host, when, lease.end)
        lease.allocations.append(Allocation(self.rng.uuid(), lease, host, row, when, None, replaces=old))

    def _fill_allocation(self, alloc: Allocation) -> None:
        """Instances the lease owner runs on this host inside the allocation's window."""
        rng = self.rng
        window = alloc.window()
        lease = alloc.lease
        if window is None or rng.random() >= (0.3 if lease.maintenance else 0.85):
            return
        w_start, w_end = window
        owner = Owner(lease.project_id, lease.user_id)
        ends_by_blazar = w_end == lease.end or w_end == lease.deleted or alloc.deleted == w_end
        t = w_start + (rng.between(MINUTE, HOUR) if rng.random() < 0.7 else rng.between(HOUR, DAY))
        runs = rng.pick(RUNS_CHOICES, RUNS_CUMULATIVE)
        for run in range(runs):
            if t >= min(w_end, self.end) - 40 * MINUTE:
                return
            if "never_launched" in self.quirks and rng.random() < 0.04:
                inst, t = self.life.failed_build(alloc.host, t, owner, BAREMETAL_FLAVOR,
                                                 reservation_id=lease.reservation_id)
                self.instances.append(inst)
                continue
            last = run == runs - 1 or t + 2 * HOUR >= w_end
            killer = None
            if last and ends_by_blazar and "killed_by_blazar" in self.quirks and rng.random() < 0.5:
                end, killer = w_end + rng.between(MINUTE, 15 * MINUTE), owner
            else:
                end = rng.between(t + 40 * MINUTE, w_end)
            inst = self.life.launch(alloc.host, t, end, owner, BAREMETAL_FLAVOR,
                                    reservation_id=lease.reservation_id, killer=killer)
            if inst.killed_by_blazar:
                inst.overrun = end - w_end
            self.instances.append(inst)
            if last:
                return
            t = end + rng.between(MINUTE, 6 * HOUR)

    def _ondemand_instances(self) -> None:
        """Hosts never enrolled in Blazar run on-demand instances back to back."""
        rng = self.rng
        for host in self.hosts:
            if host.reservable:
                continue
            for inc in host.incarnations:
                stop = inc.end if inc.end is not None else self.end
                t = inc.start + rng.between(HOUR, 3 * DAY)
                while t < min(stop, self.end) - 2 * HOUR:
                    end = min(stop, t + rng.between(2 * HOUR, 20 * DAY))
                    owner = rng.choice(rng.choice(self.projects))
                    self.instances.append(self.life.launch(host, t, end, owner, BAREMETAL_FLAVOR,
                                                           reservation_id=None))
                    t = end + rng.between(HOUR, 4 * DAY)
