"""What really happened on a simulated site: plain records shared by simulate, render and truth.

Times are integer seconds since the Unix epoch (naive UTC); ``None`` as an end means "still
open at the snapshot". Simulation fills these records; rendering and truth only read them.
"""

from __future__ import annotations

import datetime as dt
import bisect
import random
from dataclasses import dataclass, field

EPOCH = dt.datetime(1970, 1, 1)
MINUTE, HOUR, DAY = 60, 3600, 86400


def ts(moment: dt.datetime) -> int:
    """Seconds since the epoch for a naive-UTC datetime."""
    return int((moment - EPOCH).total_seconds())


def to_dt(seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else EPOCH + dt.timedelta(seconds=seconds)


# Release dates that change how rows look (naive UTC seconds).
ROCKY = ts(dt.datetime(2018, 8, 30))  # instance_actions_events.host populated since
STEIN = ts(dt.datetime(2019, 4, 10))  # ironic compute_nodes report 0 vcpus/memory/disk
NOVA_PURGE_BEFORE = ts(dt.datetime(2018, 1, 1))  # soft-deleted compute_nodes purged before
BLAZAR_SOFT_DELETE_SINCE = ts(dt.datetime(2022, 6, 1))  # computehosts deleted before: gone
BLAZAR_UUID_IDS_SINCE = ts(dt.datetime(2022, 5, 1))  # new computehost ids are UUIDs
AUDIT_SINCE = ts(dt.datetime(2025, 6, 1))  # openstack_audit triggers deployed (backfill rows before)


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


class Rng(random.Random):
    """``random.Random`` plus the id makers the generator needs (never time-based)."""

    def __init__(self, seed: object = None) -> None:
        super().__init__(seed)
        self.label = seed

    def side(self, name: str) -> "Rng":
        """An independent stream for ``name``: new draws there leave this stream unchanged."""
        return Rng(f"{self.label}:{name}")

    def hex32(self) -> str:
        """32 hex digits of a random version-4 UUID (same value ``uuid.UUID(int=..., version=4)`` gives)."""
        bits = self.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET
        return f"{bits:032x}"

    def uuid(self) -> str:
        h = self.hex32()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def pick(self, population: tuple, cumulative: tuple[float, ...]):
        """A weighted choice with precomputed cumulative weights (``choices`` is slow per call)."""
        return population[bisect.bisect(cumulative, self.random() * cumulative[-1])]

    def between(self, low: float, high: float) -> int:
        """A whole number of seconds in [low, high) (``int(uniform(low, high))``, cheaper)."""
        return int(low + (high - low) * self.random())


@dataclass(frozen=True, slots=True)
class NodeType:
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    gpus: int = 0
    gpu_model: str = ""
    weight: float = 1.0


@dataclass(eq=False, slots=True)
class BlazarHostRow:
    """One ``blazar.computehosts`` row (primary enrolment or a duplicate)."""

    id: str
    start: int
    end: int | None
    duplicate: bool = False


@dataclass(eq=False, slots=True)
class Incarnation:
    """One enrolment of a host: a ``nova.compute_nodes`` row and its Blazar rows."""

    nova_id: int
    nova_uuid: str
    start: int
    end: int | None
    blazar: list[BlazarHostRow] = field(default_factory=list)

    @property
    def primary(self) -> BlazarHostRow | None:
        return next((row for row in self.blazar if not row.duplicate), None)


@dataclass(eq=False, slots=True)
class Host:
    hostname: str  # ironic: node uuid; KVM: FQDN
    node_type: NodeType
    service_host: str
    uid: str
    reservable: bool
    incarnations: list[Incarnation] = field(default_factory=list)
    # Blazar ``reservable = 0`` periods (the resource monitor saw the host unhealthy), in time order
    flag_down: list[tuple[int, int | None]] = field(default_factory=list)
    vcpus: int = 0  # KVM: physical threads (bare metal: node_type.vcpus)
    memory_mb: int = 0
    disk_gb: int = 0


@dataclass(eq=False, slots=True)
class Lease:
    id: str
    name: str
    project_id: str
    user_id: str
    created: int
    start: int
    end: int
    deleted: int | None
    maintenance: bool
    reservation_id: str
    resource_type: str = "physical:host"
    resource_id: str = ""
    slot: tuple[int, int, int] | None = None  # KVM instance reservation: vcpus, memory_mb, disk_gb
    amount: int = 0
    degraded: bool = False
    allocations: list["Allocation"] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Allocation:
    id: str
    lease: Lease
    host: Host
    row: BlazarHostRow
    created: int
    deleted: int | None
    replaces: "Allocation | None" = None

    def window(self) -> tuple[int, int | None] | None:
        """Effective [start, end) (end None = open); None if never effective."""
        start = max(self.lease.start, self.created)
        ends = [t for t in (self.lease.deleted, self.deleted) if t is not None]
        end = min([self.lease.end, *ends])
        return (start, end) if end > start else None


@dataclass(frozen=True, slots=True)
class Event:
    """One ``instance_actions_events`` row of a multi-event action (KVM lifecycles)."""

    name: str
    start: int
    finish: int
    service_host: str | None  # the nova service that ran it (compute or conductor host)


@dataclass(eq=False, slots=True)
class Action:
    """One ``instance_actions`` row and its single event (or ``events``, all successful)."""

    action: str
    event: str
    start: int  # action start_time (request)
    finish: int | None  # event finish_time
    result: str | None  # Success | Error | None
    user_id: str
    project_id: str
    events: tuple[Event, ...] = ()


@dataclass(eq=False, slots=True)
class Placement:
    """A stretch of an instance's life on one host with one size: what it occupies."""

    start: int
    end: int | None  # None: still there at the snapshot
    host: Host
    flavor_name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    host_evidenced: bool = True  # False: no surviving row names its host (offloaded before Rocky)


@dataclass(eq=False, slots=True)
class Migration:
    """One ``nova.migrations`` row (resize, cold/live migration, evacuation)."""

    kind: str  # migration_type: resize | migration | live-migration | evacuation
    source: Host
    dest: Host
    old_flavor: str
    new_flavor: str
    status: str  # as left at the snapshot
    created: int
    updated: int


@dataclass(eq=False, slots=True)
class Instance:
    uuid: str
    project_id: str
    user_id: str
    host: Host | None
    node_recorded: bool  # False: node/host NULL in the row (never scheduled)
    created: int
    launched: int | None  # None = never launched
    end: int | None  # true end (host released); None = still running at snapshot
    reservation_id: str | None
    flavor_name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    stops: list[tuple[int, int | None]] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    killed_by_blazar: bool = False
    overrun: int = 0  # seconds the instance outlived its allocation window (Blazar kill delay)
    late_delete_days: int = 0  # >0: terminated_at NULL, deleted_at this many days late
    failed_build: bool = False
    # KVM lifecycles (shelve, resize, migrations): empty = one placement on ``host`` for life
    placements: list[Placement] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)
    vm_state: str | None = None  # state at the snapshot when a lifecycle decides it
    relaunched: int | None = None  # launched_at as reset by the last unshelve / resize / revert

    def occupancy(self) -> list[Placement]:
        """Where and how big the instance was over its life (truth)."""
        if self.placements:
            return self.placements
        return [Placement(self.created, self.end, self.host, self.flavor_name, self.vcpus, self.memory_mb,
                          self.disk_gb)]

    def host_at(self, moment: int) -> Host | None:
        """The host the instance was on at ``moment`` (the last one before it, if offloaded)."""
        current = self.host
        for placement in self.placements:
            if placement.start <= moment:
                current = placement.host
        return current


@dataclass
class World:
    """Everything that happened, plus the quirk rows the simulation decided on."""

    kind: str
    start: int
    end: int
    hosts: list[Host]
    leases: list[Lease]
    instances: list[Instance]
    services: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # quirk name -> occurrences simulated
