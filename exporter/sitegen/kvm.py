"""KVM (QEMU) site: on-demand VMs packed onto hypervisors, plus flavor:instance reservations.

Packing never oversubscribes: a VM is placed only where the host's free vcpus and memory
(at its creation time, for on-demand; over the whole lease, for reservation slots) fit it.
"""

from __future__ import annotations

import bisect
import heapq
import math

from exporter.sitegen.instances import Flavor, Owner
from exporter.sitegen.kvm_lifecycles import KvmLifecycles
from exporter.sitegen.model import (
    DAY,
    HOUR,
    MINUTE,
    Allocation,
    BlazarHostRow,
    Host,
    Incarnation,
    Lease,
    Rng,
    World,
)
from exporter.sitegen.site_base import SiteSimulation, enrolled_row, flag_down_for, live_incarnation

FLAVORS = (
    Flavor("m1.tiny", 1, 512, 1), Flavor("m1.small", 1, 2048, 20), Flavor("m1.medium", 2, 4096, 40),
    Flavor("m1.large", 4, 8192, 80), Flavor("m1.xlarge", 8, 16384, 160),
)
FLAVOR_WEIGHTS = (0.15, 0.35, 0.25, 0.17, 0.08)
FLAVOR_CUMULATIVE = (0.15, 0.5, 0.75, 0.92, 1.0)
SLOT_FLAVORS, SLOT_CUMULATIVE = FLAVORS[2:], (0.4, 0.8, 1.0)
TARGET_VCPU_USE = 0.45
MIN_LIFE, MAX_LIFE = 10 * MINUTE, 90 * DAY
MAX_LEASE_HOURS = 168


class SlotBook:
    """Reserved (start, end, vcpus) slots of one host, sorted by start, for overlap queries."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, int]] = []

    def add(self, slot: tuple[int, int, int]) -> None:
        bisect.insort(self.entries, slot)

    def remove(self, slot: tuple[int, int, int]) -> None:
        del self.entries[bisect.bisect_left(self.entries, slot)]

    def overlapping(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Slots meeting [start, end); no slot is longer than MAX_LEASE_HOURS."""
        low = bisect.bisect_left(self.entries, (start - MAX_LEASE_HOURS * HOUR,))
        high = bisect.bisect_left(self.entries, (end,))
        return [slot for slot in self.entries[low:high] if slot[1] > start]


class KvmSimulation(SiteSimulation):
    kind = "kvm"
    build_seconds = (20, 3 * MINUTE)

    def __init__(self, rng: Rng, *, hosts: int, start: int, end: int, quirks: frozenset[str]) -> None:
        super().__init__(rng, hosts=hosts, start=start, end=end, quirks=quirks, project_count=max(8, hosts + 10))
        self.ondemand = [h for h in self.hosts if not h.reservable]
        self.reservable = [h for h in self.hosts if h.reservable]
        self.running: dict[int, list[tuple[int, int, int]]] = {}  # id(host) -> heap of (end, vcpus, memory)
        self.used: dict[int, list[int]] = {}  # id(host) -> [vcpus, memory] in use now
        self.slots: dict[int, SlotBook] = {}  # id(host) -> reserved (start, end, vcpus)
        # its own stream, so a site without these lifecycles draws exactly what it drew before
        self.lifecycles = KvmLifecycles(self, Rng(f"lifecycles:{rng.getstate()[1][:4]}"), FLAVORS)

    def run(self) -> World:
        if self.ondemand:
            self._ondemand()
        if self.reservable:
            self._reservations()
        return self.world()

    def _life_seconds(self) -> int:
        return int(math.exp(self.rng.uniform(math.log(MIN_LIFE), math.log(MAX_LIFE))))

    def _ondemand(self) -> None:
        rng = self.rng
        capacity = sum(h.vcpus for h in self.ondemand)
        mean_vcpus = sum(f.vcpus * w for f, w in zip(FLAVORS, FLAVOR_WEIGHTS))
        mean_life = (MAX_LIFE - MIN_LIFE) / math.log(MAX_LIFE / MIN_LIFE)
        rate = TARGET_VCPU_USE * capacity / (mean_vcpus * mean_life)
        t = float(self.start)
        while True:
            t += rng.expovariate(rate)
            if t >= self.end - HOUR:
                return
            flavor = rng.pick(FLAVORS, FLAVOR_CUMULATIVE)
            placed = self._place(int(t), flavor)
            if placed is None:
                continue
            host, inc = placed
            created = int(t)
            end = created + self._life_seconds()
            if inc.end is not None:
                end = min(end, inc.end)
            if "never_launched" in self.quirks and rng.random() < 0.03:
                inst, _ = self.life.failed_build(host, created, rng.choice(rng.choice(self.projects)), flavor,
                                                 reservation_id=None)
                self.instances.append(inst)
                continue
            owner = rng.choice(rng.choice(self.projects))
            lifecycle = self.lifecycles.choose(created, end)
            inst = self.life.launch(host, created, end, owner, flavor, reservation_id=None,
                                    stops=lifecycle is None)
            if lifecycle is None or not self.lifecycles.apply(lifecycle, inst, owner, flavor, end):
                self.book(host, end, flavor.vcpus, flavor.memory_mb)
            self.instances.append(inst)

    def _place(self, t: int, flavor: Flavor) -> tuple[Host, Incarnation] | None:
        """A random live on-demand host with room for ``flavor`` at ``t`` (a few tries)."""
        for _ in range(6):
            host = self.rng.choice(self.ondemand)
            inc = live_incarnation(host, t)
            if inc is None:
                continue
            if self.has_room(host, t, flavor.vcpus, flavor.memory_mb):
                return host, inc
        return None

    def has_room(self, host: Host, t: int, vcpus: int, memory_mb: int) -> bool:
        """Whether ``host``'s bookings still running at ``t`` leave room for vcpus and memory."""
        heap = self.running.setdefault(id(host), [])
        used = self.used.setdefault(id(host), [0, 0])
        while heap and heap[0][0] <= t:
            _, booked_vcpus, booked_memory = heapq.heappop(heap)
            used[0] -= booked_vcpus
            used[1] -= booked_memory
        return used[0] + vcpus <= host.vcpus and used[1] + memory_mb <= host.memory_mb

    def book(self, host: Host, until: int, vcpus: int, memory_mb: int) -> None:
        """Hold vcpus and memory on ``host`` from now until ``until`` (a later arrival is held
        from now too: conservative, so packing never oversubscribes)."""
        heapq.heappush(self.running.setdefault(id(host), []), (until, vcpus, memory_mb))
        used = self.used.setdefault(id(host), [0, 0])
        used[0] += vcpus
        used[1] += memory_mb

    def _reservations(self) -> None:
        rng = self.rng
        capacity = sum(h.vcpus for h in self.reservable)
        rate = 0.4 * capacity / (2.5 * 4 * 80 * HOUR)
        t = float(self.start)
        while True:
            t += rng.expovariate(rate)
            if t >= self.end - MINUTE:
                return
            self._request_lease(int(t))

    def _request_lease(self, created: int) -> None:
        rng = self.rng
        flavor = rng.pick(SLOT_FLAVORS, SLOT_CUMULATIVE)
        amount = rng.randint(1, 4)
        start = (created // MINUTE + 1) * MINUTE
        if "advance_bookings" in self.quirks and rng.random() < 0.2:
            start += rng.between(HOUR, 7 * DAY) // MINUTE * MINUTE
        end = start + rng.randint(4, MAX_LEASE_HOURS) * HOUR
        owner = rng.choice(rng.choice(self.projects))
        reservation_id = rng.uuid()
        lease = Lease(rng.uuid(), f"lease-{len(self.leases) + 1}", owner.project_id, owner.user_id, created, start,
                      end, None, False, reservation_id, resource_type="flavor:instance", resource_id=rng.uuid(),
                      slot=(flavor.vcpus, flavor.memory_mb, flavor.disk_gb), amount=amount)
        for _ in range(amount):
            placed = self._slot_host(start, end, flavor.vcpus, created)
            if placed is None:  # Blazar refuses the whole lease: release what was booked
                for alloc in lease.allocations:
                    self.slots[id(alloc.host)].remove((start, end, flavor.vcpus))
                return
            host, row = placed
            self.slots.setdefault(id(host), SlotBook()).add((start, end, flavor.vcpus))
            lease.allocations.append(Allocation(rng.uuid(), lease, host, row, created + rng.between(0, 3), None))
        if start > created + HOUR:
            self._count("advance_bookings")
        if "early_deleted_leases" in self.quirks and rng.random() < 0.1:
            deleted = rng.between(created + MINUTE, end)
            if deleted < self.end:
                lease.deleted = deleted
                self._count("early_deleted_leases")
        stop = lease.end if lease.deleted is None else lease.deleted
        for alloc in lease.allocations:
            closing = stop if lease.deleted is not None else stop + rng.between(5, 90)
            alloc.deleted = closing if closing < self.end else None
            self._fill_slot(alloc, Flavor(f"reservation:{reservation_id}", *lease.slot))
        self.leases.append(lease)

    def _slot_host(self, start: int, end: int, vcpus: int, created: int) -> tuple[Host, BlazarHostRow] | None:
        """A random enrolled host whose reserved slots leave ``vcpus`` free over [start, end)."""
        for _ in range(6):
            host = self.rng.choice(self.reservable)
            row = enrolled_row(host, start, end)
            if row is None or flag_down_for(host, created, start, end):
                continue
            booked = self.slots[id(host)].overlapping(start, end) if id(host) in self.slots else []
            points = [start] + [s[0] for s in booked if s[0] > start]
            peak = max(sum(v for s, e, v in booked if s <= p < e) for p in points)
            if peak + vcpus <= host.vcpus:
                return host, row
        return None

    def _fill_slot(self, alloc: Allocation, flavor: Flavor) -> None:
        rng = self.rng
        window = alloc.window()
        if window is None or rng.random() >= 0.85:
            return
        w_start, w_end = window
        created = w_start + rng.between(MINUTE, 2 * HOUR)
        if created >= min(w_end, self.end) - 20 * MINUTE:
            return
        owner = Owner(alloc.lease.project_id, alloc.lease.user_id)
        killer = None
        if "killed_by_blazar" in self.quirks and rng.random() < 0.5:
            end, killer = w_end + rng.between(MINUTE, 15 * MINUTE), owner
        else:
            end = rng.between(created + 10 * MINUTE, w_end)
        inst = self.life.launch(alloc.host, created, end, owner, flavor, reservation_id=alloc.lease.reservation_id,
                                killer=killer)
        if inst.killed_by_blazar:
            inst.overrun = end - w_end
        self.instances.append(inst)
