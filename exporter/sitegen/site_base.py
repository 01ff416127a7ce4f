"""What both kinds of simulated site share: hosts, projects, lifecycles and host look-ups."""

from __future__ import annotations

from exporter.sitegen.hosts import simulate_flag_down, simulate_hosts
from exporter.sitegen.instances import Lifecycles, Owner
from exporter.sitegen.model import BlazarHostRow, Host, Incarnation, Instance, Lease, Rng, World


def projects(rng: Rng, count: int) -> list[list[Owner]]:
    """User projects, each a list of owners (project, user) sharing the project id."""
    result = []
    for _ in range(count):
        project = rng.hex32()
        result.append([Owner(project, rng.hex32()) for _ in range(rng.randint(1, 5))])
    return result


def enrolled_row(host: Host, start: int, end: int) -> BlazarHostRow | None:
    """The primary Blazar row enrolling ``host`` over all of [start, end), if any."""
    for inc in host.incarnations:
        for row in inc.blazar:
            if not row.duplicate and row.start <= start and (row.end is None or row.end >= end):
                return row
    return None


def flag_down_for(host: Host, created: int, start: int, end: int) -> bool:
    """True when ``host``'s Blazar flag is down at ``created`` for part of [start, end): Blazar
    will not allocate it to a lease requested then."""
    for down, up in host.flag_down:
        if down <= created and (up is None or (created < up and up > start)) and down < end:
            return True
    return False


def live_incarnation(host: Host, at: int) -> Incarnation | None:
    """The enrolment of ``host`` that Nova knows at ``at``, if any."""
    return next((inc for inc in host.incarnations if inc.start <= at and (inc.end is None or at < inc.end)), None)


class SiteSimulation:
    """Shared state: the hosts, user projects, lifecycle maker and what has happened so far."""

    kind = ""
    build_seconds = (0, 0)

    def __init__(self, rng: Rng, *, hosts: int, start: int, end: int, quirks: frozenset[str],
                 project_count: int) -> None:
        self.rng, self.start, self.end, self.quirks = rng, start, end, quirks
        self.counts: dict[str, int] = {}
        self.hosts = simulate_hosts(rng, count=hosts, start=start, end=end, kind=self.kind, quirks=quirks,
                                    counts=self.counts)
        if "maintenance_flag" in quirks:  # its own stream: switching it leaves the rest unchanged
            simulate_flag_down(rng.side("flags"), self.hosts, end, self.counts)
        self.projects = projects(rng, project_count)
        self.life = Lifecycles(rng, snapshot=end, quirks=quirks, counts=self.counts,
                               build_seconds=self.build_seconds)
        self.leases: list[Lease] = []
        self.instances: list[Instance] = []

    def world(self) -> World:
        services = sorted({h.service_host for h in self.hosts})
        return World(self.kind, self.start, self.end, self.hosts, self.leases, self.instances, services,
                     self.counts)

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
